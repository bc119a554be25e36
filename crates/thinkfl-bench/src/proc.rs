//! What Linux's `/proc` says about this process: CPU time (of the process, or of its threads by
//! name) and resident memory. `None` (or 0 for thread CPU) where `/proc` is unavailable.

/// Clock ticks per second of `/proc`'s CPU times: USER_HZ, 100 on every Linux this runs on.
const TICKS: f64 = 100.0;

/// User + system CPU seconds of a `stat` line (`/proc/self/stat` or a thread's).
fn stat_cpu_seconds(stat: &str) -> Option<f64> {
    // The fields after the command name, which is in parentheses and may hold spaces: state is
    // field 3, utime and stime are fields 14 and 15.
    let rest: Vec<&str> = stat[stat.rfind(')')? + 2..].split_whitespace().collect();
    let utime: f64 = rest.get(11)?.parse().ok()?;
    let stime: f64 = rest.get(12)?.parse().ok()?;
    Some((utime + stime) / TICKS)
}

/// CPU time (user + system) of this process so far, in seconds.
pub fn cpu_seconds() -> Option<f64> {
    stat_cpu_seconds(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// CPU seconds (user + system) used so far by this process's threads whose name starts with
/// `prefix` (0 without `/proc`).
pub fn threads_cpu_s(prefix: &str) -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for e in dir.flatten() {
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        if !stat[open + 1..close].starts_with(prefix) {
            continue;
        }
        total += stat_cpu_seconds(&stat).unwrap_or(0.0);
    }
    total
}

/// Resident set size of this process in bytes (`VmRSS` of `/proc/self/status`).
pub fn resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Peak resident set size of this process in bytes (`VmHWM` of `/proc/self/status`): the
/// high-water mark, so a figure of one run needs a process of its own.
pub fn peak_resident_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// Returns the allocator's free pages to the system; `false` where that is not available.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_heap() -> bool {
    unsafe extern "C" {
        /// glibc: `int malloc_trim(size_t pad)`.
        fn malloc_trim(pad: usize) -> i32;
    }
    // SAFETY: malloc_trim only releases memory the allocator holds as free; it is safe to call
    // at any time from any thread.
    unsafe { malloc_trim(0) };
    true
}

/// Returns the allocator's free pages to the system; `false` where that is not available.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_heap() -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_lines_give_user_plus_system_time() {
        // A command name with spaces and parentheses; utime 250, stime 50 ticks.
        let line = "42 (a (b) c) S 1 42 42 0 -1 4194560 10 0 0 0 250 50 0 0 20 0 3 0 100 0 0";
        assert_eq!(stat_cpu_seconds(line), Some(3.0));
        assert_eq!(stat_cpu_seconds("42 (x) S 1"), None);
    }

    #[test]
    fn this_process_has_figures_on_linux() {
        if std::path::Path::new("/proc/self/stat").exists() {
            assert!(cpu_seconds().is_some());
            assert!(resident_bytes().is_some_and(|b| b > 0));
        }
    }
}
