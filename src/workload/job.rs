//! The Job controller's rules (placeholder until the Job controller lands).
