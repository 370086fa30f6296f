//! Network (filled in by the net work).
