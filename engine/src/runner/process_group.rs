//! Process groups this engine started (`serve` entries, `start_process`), recorded in one
//! registry so that an immediate stop, which exits without running destructors, still
//! kills every one of them and removes their temporary folders.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Live groups: registration number → (process group ID, its temporary folder); `None`
/// once [`kill_all`] ran, so that nothing started later can escape it.
static LIVE: Mutex<Option<BTreeMap<u64, (i32, PathBuf)>>> = Mutex::new(Some(BTreeMap::new()));
static NEXT: AtomicU64 = AtomicU64::new(0);

/// A process group led by a child we spawned with `process_group(0)`. Dropping it kills
/// whatever is left in the group (the folder itself belongs to its `TempDir`).
#[derive(Debug)]
pub struct ProcessGroup {
    registration: u64,
    pgid: i32,
    /// Known to have no members left: its ID may belong to someone else by now.
    gone: bool,
}

impl ProcessGroup {
    /// Spawn `command` as the leader of a new process group and record the group with
    /// the folder to remove with it. Spawning and recording happen under the registry's
    /// lock: an immediate stop sees the group, or the spawn never happens.
    pub fn spawn(
        command: &mut tokio::process::Command,
        folder: &Path,
    ) -> std::io::Result<(tokio::process::Child, Self)> {
        let mut live = lock();
        let Some(groups) = live.as_mut() else {
            return Err(std::io::Error::other("the run is stopping"));
        };
        let child = command.process_group(0).spawn()?;
        let registration = NEXT.fetch_add(1, Ordering::Relaxed);
        // kill(-0) would signal our own group: a missing ID is a group with no members.
        let pgid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .unwrap_or(0);
        if pgid > 0 {
            groups.insert(registration, (pgid, folder.to_path_buf()));
        }
        let group = Self {
            registration,
            pgid,
            gone: pgid <= 0,
        };
        Ok((child, group))
    }

    /// Send `signal` to every process of the group.
    pub fn signal(&self, signal: i32) {
        if !self.gone {
            // SAFETY: kill(2) on a process group we created; no memory is touched.
            unsafe {
                libc::kill(-self.pgid, signal);
            }
        }
    }

    /// Whether any process of the group is left, not counting zombies: a member whose
    /// parent exited (`cargo run`'s child, say) is reaped by init, which may take
    /// seconds, and it has already done all it will do.
    pub fn has_members(&mut self) -> bool {
        if self.gone {
            return false;
        }
        // SAFETY: signal 0 only checks that the group exists.
        let alive = unsafe { libc::kill(-self.pgid, 0) } == 0 && !only_zombies(self.pgid);
        self.gone = !alive;
        alive
    }

    /// Wait until the group has no members, polling, at most `limit`; whether it emptied.
    pub async fn wait_empty(&mut self, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        while self.has_members() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }
}

/// Whether every process of group `pgid` has exited and waits to be reaped, as `/proc`
/// tells (where it cannot be read: no, so the group counts as alive).
fn only_zombies(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if !name
            .to_str()
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some((_, rest)) = stat.rsplit_once(')') else {
            continue;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let group = fields.nth(1).and_then(|g| g.parse::<i32>().ok());
        if group == Some(pgid) && !matches!(state, Some("Z" | "X")) {
            return false;
        }
    }
    // No member found at all (reaped meanwhile) is as good as only zombies.
    true
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        if let Some(groups) = lock().as_mut() {
            groups.remove(&self.registration);
        }
    }
}

type Registry = Option<BTreeMap<u64, (i32, PathBuf)>>;

fn lock() -> std::sync::MutexGuard<'static, Registry> {
    crate::sync::lock(&LIVE)
}

/// Kill every registered group and remove its folder, now, and refuse to start any
/// more. For the immediate stop, which exits right after: nothing else will.
pub fn kill_all() -> usize {
    let live: Vec<(i32, PathBuf)> = lock().take().unwrap_or_default().into_values().collect();
    for (pgid, folder) in live.iter().filter(|(pgid, _)| *pgid > 0) {
        // SAFETY: as in `signal`.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
        let _ = std::fs::remove_dir_all(folder);
    }
    live.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_a_group_kills_the_children_its_leader_left_behind() {
        let folder = tempfile::tempdir().unwrap();
        // The leader starts a grandchild and exits: killing the leader alone would miss it.
        let mut command = tokio::process::Command::new("sh");
        command.args(["-c", "sleep 300 & exit 0"]);
        let (mut leader, mut group) = ProcessGroup::spawn(&mut command, folder.path()).unwrap();
        leader.wait().await.unwrap();
        assert!(group.has_members(), "the grandchild runs in the group");
        let pgid = group.pgid;
        drop(group);
        let mut probe = ProcessGroup {
            registration: u64::MAX,
            pgid,
            gone: false,
        };
        assert!(probe.wait_empty(Duration::from_secs(5)).await);
        probe.gone = true;
    }

    #[tokio::test]
    async fn a_group_of_zombies_has_no_members() {
        let folder = tempfile::tempdir().unwrap();
        let mut command = tokio::process::Command::new("sleep");
        command.arg("300");
        let (mut leader, mut group) = ProcessGroup::spawn(&mut command, folder.path()).unwrap();
        assert!(group.has_members());
        let pid = leader.id().unwrap();
        group.signal(libc::SIGKILL);
        // Not reaped yet (nobody waits on it): the group exists and holds a zombie.
        let stat = format!("/proc/{pid}/stat");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !std::fs::read_to_string(&stat).is_ok_and(|s| s.contains(") Z ")) {
            assert!(
                std::time::Instant::now() < deadline,
                "never became a zombie"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        // SAFETY: signal 0 on our own group.
        assert_eq!(
            unsafe { libc::kill(-group.pgid, 0) },
            0,
            "the zombie keeps the group"
        );
        assert!(!group.has_members(), "a zombie has done all it will do");
        leader.wait().await.unwrap();
    }
}
