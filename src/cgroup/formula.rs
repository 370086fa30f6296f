//! Pure resource arithmetic: Kubernetes millicores → cgroup v1 shares / CFS quota, and the two
//! shares → cgroup v2 `cpu.weight` conversions that coexist on a node.
//!
//! Sources: kubelet `pkg/kubelet/cm/helpers_linux.go` (`MilliCPUToShares`, `MilliCPUToQuota`),
//! kubelet `cgroup_manager_linux.go` (`getCPUWeight`, linear), and runc ≥ 1.3.2
//! `opencontainers/cgroups/utils.go` (`ConvertCPUSharesToCgroupV2Value`, quadratic).

/// Smallest `cpu.shares` value the kernel accepts.
pub const MIN_SHARES: u64 = 2;
/// Largest `cpu.shares` value the kernel accepts.
pub const MAX_SHARES: u64 = 262_144;
/// Shares for one whole CPU.
pub const SHARES_PER_CPU: u64 = 1024;
/// Millicores in one CPU.
pub const MILLI_CPU_TO_CPU: u64 = 1000;
/// Default CFS period (µs), the kubelet's `QuotaPeriod`.
pub const QUOTA_PERIOD_US: u64 = 100_000;
/// Smallest CFS quota (µs) the kubelet writes (`MinQuotaPeriod`), so 10m is the effective minimum limit.
pub const MIN_QUOTA_US: u64 = 1000;
/// Largest `cpu.weight`.
pub const MAX_WEIGHT: u64 = 10_000;

/// `MilliCPUToShares`: `m × 1024 / 1000`, clamped to [2, 262144]; 0 → 2.
pub fn milli_cpu_to_shares(m: u64) -> u64 {
    if m == 0 {
        return MIN_SHARES;
    }
    let shares = m.saturating_mul(SHARES_PER_CPU) / MILLI_CPU_TO_CPU;
    shares.clamp(MIN_SHARES, MAX_SHARES)
}

/// `MilliCPUToQuota`: `m × period / 1000` with a floor of 1000 µs; 0 millicores → 0 (no quota).
pub fn milli_cpu_to_quota(m: u64, period: u64) -> u64 {
    if m == 0 {
        return 0;
    }
    let quota = m.saturating_mul(period) / MILLI_CPU_TO_CPU;
    quota.max(MIN_QUOTA_US)
}

/// The kubelet's linear conversion (pod and QoS cgroups): `1 + ((s − 2) × 9999) / 262142`.
/// Shares below 2 are treated as 2; shares ≥ 262144 give 10000.
pub fn shares_to_weight_linear(s: u64) -> u64 {
    let s = s.clamp(MIN_SHARES, MAX_SHARES);
    1 + ((s - MIN_SHARES) * 9999) / (MAX_SHARES - MIN_SHARES)
}

/// runc ≥ 1.3.2 / crun ≥ 1.23 quadratic conversion (container cgroups):
/// with `L = log2(s)`, `weight = ceil(10^((L² + 125·L)/612 − 7/34))`; 0 → 0 ("unset"),
/// ≤ 2 → 1, ≥ 262144 → 10000. It maps 1024 shares (1 CPU) to the v2 default weight 100.
pub fn shares_to_weight_runc(s: u64) -> u64 {
    if s == 0 {
        return 0;
    }
    if s <= MIN_SHARES {
        return 1;
    }
    if s >= MAX_SHARES {
        return MAX_WEIGHT;
    }
    let l = (s as f64).log2();
    let exponent = (l * l + 125.0 * l) / 612.0 - 7.0 / 34.0;
    // Same float expression as runc's Go code; the cast saturates and the clamp keeps it in range.
    (10f64.powf(exponent).ceil() as u64).clamp(1, MAX_WEIGHT)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Worked values of the formulas cited at the top (kubelet `MilliCPUToShares`, kubelet
    /// `getCPUWeight`, runc `ConvertCPUSharesToCgroupV2Value`): (milliCPU, shares, linear,
    /// quadratic).
    const TABLE: [(u64, u64, u64, u64); 5] = [
        (0, 2, 1, 1),
        (100, 102, 4, 17),
        (500, 512, 20, 59),
        (1000, 1024, 39, 100),
        (2000, 2048, 79, 174),
    ];

    #[test]
    fn table_shares_linear_quadratic() {
        for (m, shares, linear, quad) in TABLE {
            assert_eq!(milli_cpu_to_shares(m), shares, "shares for {m}m");
            assert_eq!(
                shares_to_weight_linear(shares),
                linear,
                "linear for {shares}"
            );
            assert_eq!(
                shares_to_weight_runc(shares),
                quad,
                "quadratic for {shares}"
            );
        }
    }

    #[test]
    fn shares_clamp() {
        assert_eq!(milli_cpu_to_shares(1), 2);
        assert_eq!(milli_cpu_to_shares(1_000_000), MAX_SHARES);
        assert_eq!(milli_cpu_to_shares(u64::MAX), MAX_SHARES);
    }

    #[test]
    fn weight_edges() {
        assert_eq!(shares_to_weight_runc(0), 0);
        assert_eq!(shares_to_weight_runc(1), 1);
        assert_eq!(shares_to_weight_runc(2), 1);
        assert_eq!(shares_to_weight_runc(MAX_SHARES), 10_000);
        assert_eq!(shares_to_weight_runc(u64::MAX), 10_000);
        assert_eq!(shares_to_weight_linear(0), 1);
        assert_eq!(shares_to_weight_linear(MAX_SHARES), 10_000);
        assert_eq!(shares_to_weight_linear(u64::MAX), 10_000);
        // Monotonic across the whole range.
        let mut prev = 0;
        for s in (2..MAX_SHARES).step_by(97) {
            let w = shares_to_weight_runc(s);
            assert!(w >= prev && (1..=10_000).contains(&w), "{s} → {w}");
            prev = w;
        }
    }

    #[test]
    fn quota_examples() {
        assert_eq!(milli_cpu_to_quota(250, QUOTA_PERIOD_US), 25_000);
        assert_eq!(milli_cpu_to_quota(5, QUOTA_PERIOD_US), 1000);
        assert_eq!(milli_cpu_to_quota(1500, QUOTA_PERIOD_US), 150_000);
        assert_eq!(milli_cpu_to_quota(200, QUOTA_PERIOD_US), 20_000);
        assert_eq!(milli_cpu_to_quota(10, QUOTA_PERIOD_US), 1000);
        assert_eq!(milli_cpu_to_quota(0, QUOTA_PERIOD_US), 0);
        assert_eq!(milli_cpu_to_quota(500, 50_000), 25_000);
    }
}
