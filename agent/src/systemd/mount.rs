//! The log tmpfs as systemd sees it (a mount unit named after its path) and as the kernel
//! sees it (a line of `mountinfo`), so a mount can be both requested and verified.

use super::SystemdError;

/// The mount unit name systemd derives from an absolute path (`systemd-escape --path
/// --suffix=mount`): `/mnt/ram_logs` → `mnt-ram_logs.mount`.
///
/// Refuses relative or non-normalised paths (`..`, `.`, `//`, a trailing `/`), which systemd
/// would refuse too, so the error names the path rather than an opaque D-Bus failure.
pub fn mount_unit_name(path: &str) -> Result<String, SystemdError> {
    let invalid = |why: &str| SystemdError::InvalidMountPath {
        path: path.to_string(),
        why: why.to_string(),
    };
    if !path.starts_with('/') {
        return Err(invalid("it must be absolute"));
    }
    if path == "/" {
        return Err(invalid("the root file system cannot be the log tmpfs"));
    }
    if path.ends_with('/') || path.contains("//") {
        return Err(invalid("remove the repeated or trailing `/`"));
    }
    // Split by hand: `Path::components` silently drops interior `.` components.
    if path.split('/').any(|c| c == "." || c == "..") {
        return Err(invalid("`.` and `..` components are not allowed"));
    }
    Ok(format!("{}.mount", escape(&path[1..])))
}

/// systemd's unit name escaping (`unit_name_escape`): `/` becomes `-`; ASCII letters, digits,
/// `:`, `_` and `.` (except a leading `.`) stay; every other byte becomes `\xNN`.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'.') => {
                out.push(char::from(b))
            }
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// One mount as `/proc/<pid>/mountinfo` lists it (only the fields we check).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Where it is mounted, unescaped.
    pub mount_point: String,
    /// Per-mount options, e.g. `rw,nosuid,nodev,noexec,relatime`.
    pub mount_options: Vec<String>,
    /// File system type, e.g. `tmpfs`.
    pub fs_type: String,
    /// Per-superblock options, e.g. `size=65536k,mode=750`.
    pub super_options: Vec<String>,
}

impl MountEntry {
    fn super_option(&self, key: &str) -> Option<&str> {
        self.super_options
            .iter()
            .find_map(|o| o.strip_prefix(key)?.strip_prefix('='))
    }
}

/// The mount visible at `mount_point`: the last entry for it, since a later mount on the same
/// point hides the earlier ones.
pub fn find_mount(mountinfo: &str, mount_point: &str) -> Option<MountEntry> {
    mountinfo
        .lines()
        .rev()
        .filter_map(parse_line)
        .find(|m| m.mount_point == mount_point)
}

/// Parses one line: `id parent major:minor root mount_point options [optional...] - fstype
/// source super_options` (proc_pid_mountinfo(5)).
fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let left: Vec<&str> = left.split(' ').collect();
    let right: Vec<&str> = right.split(' ').collect();
    let split = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
    Some(MountEntry {
        mount_point: unescape(left.get(4)?),
        mount_options: split(left.get(5)?),
        fs_type: right.first()?.to_string(),
        super_options: split(right.get(2)?),
    })
}

/// The kernel writes space, tab, newline and backslash in paths as `\ooo` octal escapes.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The tmpfs options `ensure_tmpfs` asks systemd for.
pub fn tmpfs_options(size_mb: u32, mode: u32) -> String {
    format!("size={size_mb}m,mode={mode:04o},nosuid,nodev,noexec")
}

/// What is wrong with a mount compared with the tmpfs we want, or `None` when it matches.
///
/// `root_mode` is the permission bits of the mounted directory as seen through `stat`.
pub fn tmpfs_mismatch(
    entry: &MountEntry,
    size_mb: u32,
    mode: u32,
    root_mode: u32,
) -> Option<String> {
    let mut wrong = Vec::new();
    if entry.fs_type != "tmpfs" {
        wrong.push(format!("file system is {} (want tmpfs)", entry.fs_type));
    } else {
        let want_size = format!("{}k", u64::from(size_mb) * 1024);
        match entry.super_option("size") {
            Some(size) if size == want_size => {}
            Some(size) => wrong.push(format!("size is {size} (want {want_size})")),
            None => wrong.push(format!("size is unlimited (want {want_size})")),
        }
    }
    if root_mode & 0o7777 != mode {
        wrong.push(format!(
            "mode is {:04o} (want {mode:04o})",
            root_mode & 0o7777
        ));
    }
    for flag in ["nosuid", "nodev", "noexec"] {
        if !entry.mount_options.iter().any(|o| o == flag) {
            wrong.push(format!("{flag} is not set"));
        }
    }
    (!wrong.is_empty()).then(|| wrong.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_follow_systemd_escaping() {
        let cases = [
            ("/mnt/ram_logs", "mnt-ram_logs.mount"),
            ("/a-b/c.d/.x", "a\\x2db-c.d-.x.mount"),
            ("/.hidden", "\\x2ehidden.mount"),
            ("/x y/ü", "x\\x20y-\\xc3\\xbc.mount"),
            ("/var/log:1", "var-log:1.mount"),
        ];
        for (path, want) in cases {
            assert_eq!(mount_unit_name(path).unwrap(), want, "{path}");
        }
    }

    /// Cross-checks the escaping against the real `systemd-escape` when it is installed.
    #[test]
    fn unit_names_match_systemd_escape() {
        let paths = [
            "/mnt/ram_logs",
            "/a-b/c.d/.x",
            "/.hidden",
            "/x y/ü",
            "/v\\w",
        ];
        let out = match std::process::Command::new("systemd-escape")
            .args(["--path", "--suffix=mount"])
            .args(paths)
            .output()
        {
            Ok(out) if out.status.success() => out,
            _ => {
                eprintln!("skipped: needs the `systemd-escape` tool (package systemd)");
                return;
            }
        };
        let want: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect();
        let got: Vec<String> = paths.iter().map(|p| mount_unit_name(p).unwrap()).collect();
        assert_eq!(got, want);
    }

    #[test]
    fn bad_paths_are_refused_naming_the_path() {
        for path in ["mnt/x", "/", "/mnt/x/", "/mnt//x", "/mnt/../x", "/mnt/./x"] {
            let err = mount_unit_name(path).unwrap_err().to_string();
            assert!(err.contains(path), "{path}: {err}");
        }
    }

    const MOUNTINFO: &str = "\
22 1 0:21 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:35 / /mnt/ram_logs rw,nosuid,nodev,noexec,relatime shared:20 - tmpfs tmpfs rw,size=65536k,mode=750
41 22 0:36 / /mnt/with\\040space rw,relatime - tmpfs tmpfs rw,size=1024k
";

    #[test]
    fn mountinfo_entries_are_parsed_and_unescaped() {
        let m = find_mount(MOUNTINFO, "/mnt/ram_logs").unwrap();
        assert_eq!(m.fs_type, "tmpfs");
        assert_eq!(m.super_option("size"), Some("65536k"));
        assert_eq!(m.super_option("mode"), Some("750"));
        assert!(m.mount_options.contains(&"noexec".to_string()));
        assert!(find_mount(MOUNTINFO, "/mnt/with space").is_some());
        assert!(find_mount(MOUNTINFO, "/mnt").is_none());
    }

    #[test]
    fn last_mount_on_a_point_wins() {
        let text = format!("{MOUNTINFO}50 40 0:40 / /mnt/ram_logs rw - ext4 /dev/vdb rw\n");
        assert_eq!(find_mount(&text, "/mnt/ram_logs").unwrap().fs_type, "ext4");
    }

    #[test]
    fn mismatch_lists_every_difference() {
        let m = find_mount(MOUNTINFO, "/mnt/ram_logs").unwrap();
        assert_eq!(tmpfs_mismatch(&m, 64, 0o750, 0o40750), None);
        let wrong = tmpfs_mismatch(&m, 128, 0o700, 0o40750).unwrap();
        assert!(wrong.contains("size is 65536k (want 131072k)"), "{wrong}");
        assert!(wrong.contains("mode is 0750 (want 0700)"), "{wrong}");
        let plain = find_mount(MOUNTINFO, "/mnt/with space").unwrap();
        let wrong = tmpfs_mismatch(&plain, 1, 0o750, 0o750).unwrap();
        assert!(wrong.contains("nosuid is not set") && wrong.contains("noexec"));
        let root = find_mount(MOUNTINFO, "/").unwrap();
        assert!(tmpfs_mismatch(&root, 1, 0o755, 0o755)
            .unwrap()
            .contains("file system is ext4"));
    }

    #[test]
    fn options_carry_size_mode_and_hardening() {
        assert_eq!(
            tmpfs_options(256, 0o750),
            "size=256m,mode=0750,nosuid,nodev,noexec"
        );
    }
}
