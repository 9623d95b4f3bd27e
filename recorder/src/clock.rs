//! The probe stamps calls with CLOCK_BOOTTIME (it keeps counting across suspend, unlike
//! CLOCK_MONOTONIC); files carry wall time. The offset between the two is measured once per
//! recording and written into every segment's metadata.

fn now(clock: libc::clockid_t) -> i128 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is a valid out-pointer; both clocks exist on every kernel this runs on.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    i128::from(ts.tv_sec) * 1_000_000_000 + i128::from(ts.tv_nsec)
}

/// Nanoseconds to add to a CLOCK_BOOTTIME stamp to get Unix time. Takes the tightest of a few
/// bracketed readings so a preemption between the clock reads does not skew it.
pub fn boot_to_wall_offset_ns() -> i64 {
    let mut best: Option<(i128, i128)> = None;
    for _ in 0..5 {
        let b1 = now(libc::CLOCK_BOOTTIME);
        let wall = now(libc::CLOCK_REALTIME);
        let b2 = now(libc::CLOCK_BOOTTIME);
        let width = b2 - b1;
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, wall - (b1 + b2) / 2));
        }
    }
    best.map(|(_, off)| off as i64).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    #[test]
    fn offset_turns_boottime_into_wall_time() {
        let off = super::boot_to_wall_offset_ns() as i128;
        let wall = super::now(libc::CLOCK_BOOTTIME) + off;
        let real = super::now(libc::CLOCK_REALTIME);
        assert!(
            (real - wall).abs() < 50_000_000,
            "off by {} ns",
            real - wall
        );
    }
}
