//! The extended attributes an owner shift rewrites: POSIX ACLs (`system.posix_acl_*`, ids
//! in each entry) and file capabilities (`security.capability`, a root id in revision 3), in
//! the kernel's on-disk format. Pure codecs; the syscalls are the walk's.

use std::ffi::CStr;

use anyhow::{Result, bail};

use crate::formats::id_shift::{IdShift, Mapping};

/// The file capability xattr.
pub(crate) const CAPS: &CStr = c"security.capability";
/// The access ACL xattr.
pub(crate) const ACL_ACCESS: &CStr = c"system.posix_acl_access";
/// The default ACL xattr (directories).
pub(crate) const ACL_DEFAULT: &CStr = c"system.posix_acl_default";

/// Shifts the ids of ACL_USER and ACL_GROUP entries of a POSIX ACL xattr (the kernel's
/// format: version 2 header, then 8-byte entries `tag u16, perm u16, id u32`, little endian)
/// that are in the source range; returns how many.
pub(crate) fn shift_acl(acl: &mut [u8], map: &Mapping) -> Result<u64> {
    const ACL_USER: u16 = 0x02;
    const ACL_GROUP: u16 = 0x08;
    if acl.len() < 4 || !(acl.len() - 4).is_multiple_of(8) {
        bail!("a POSIX ACL of {} bytes is malformed", acl.len());
    }
    let version = u32::from_le_bytes([acl[0], acl[1], acl[2], acl[3]]);
    if version != 2 {
        bail!("a POSIX ACL of version {version} is unknown (2 expected)");
    }
    let mut shifted = 0;
    for e in acl[4..].chunks_exact_mut(8) {
        let tag = u16::from_le_bytes([e[0], e[1]]);
        let id = u32::from_le_bytes([e[4], e[5], e[6], e[7]]);
        let new = match tag {
            ACL_USER => map.uid().map(id),
            ACL_GROUP => map.gid().map(id),
            _ => None,
        };
        if let Some(new) = new {
            e[4..8].copy_from_slice(&new.to_le_bytes());
            shifted += 1;
        }
    }
    Ok(shifted)
}

/// The root id of a `VFS_CAP_REVISION_3` capability xattr (`None`: another revision, which
/// holds none and is valid in every user namespace).
pub(crate) fn caps_rootid(caps: &[u8]) -> Option<u32> {
    const REVISION_MASK: u32 = 0xFF00_0000;
    const REVISION_3: u32 = 0x0300_0000;
    let magic = u32::from_le_bytes(caps.get(..4)?.try_into().ok()?);
    if caps.len() != 24 || magic & REVISION_MASK != REVISION_3 {
        return None;
    }
    Some(u32::from_le_bytes(caps[20..24].try_into().ok()?))
}

/// Shifts the root id of a `VFS_CAP_REVISION_3` capability xattr when it is in the uid source
/// range; returns whether it did. Other revisions have no id and stay as they are.
pub(crate) fn shift_caps(caps: &mut [u8], uid: &IdShift) -> bool {
    const REVISION_MASK: u32 = 0xFF00_0000;
    const REVISION_3: u32 = 0x0300_0000;
    if caps.len() != 24 {
        return false;
    }
    let magic = u32::from_le_bytes([caps[0], caps[1], caps[2], caps[3]]);
    if magic & REVISION_MASK != REVISION_3 {
        return false;
    }
    let rootid = u32::from_le_bytes([caps[20], caps[21], caps[22], caps[23]]);
    match uid.map(rootid) {
        Some(new) => {
            caps[20..24].copy_from_slice(&new.to_le_bytes());
            true
        }
        None => false,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::formats::id_shift::tests::map;

    /// A version 2 POSIX ACL of (tag, perm, id) entries, as the kernel stores it.
    pub(crate) fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
        let mut v = 2u32.to_le_bytes().to_vec();
        for &(tag, perm, id) in entries {
            v.extend_from_slice(&tag.to_le_bytes());
            v.extend_from_slice(&perm.to_le_bytes());
            v.extend_from_slice(&id.to_le_bytes());
        }
        v
    }

    #[test]
    fn acl_user_and_group_entries_in_the_source_range_are_shifted() {
        let mut a = acl(&[
            (0x01, 7, u32::MAX),
            (0x02, 6, 100_005),
            (0x02, 4, 1000),
            (0x04, 5, u32::MAX),
            (0x08, 4, 100_007),
            (0x08, 4, 300_000),
            (0x10, 7, u32::MAX),
            (0x20, 0, u32::MAX),
        ]);
        assert_eq!(shift_acl(&mut a, &map()).unwrap(), 2);
        assert_eq!(
            a,
            acl(&[
                (0x01, 7, u32::MAX),
                (0x02, 6, 300_005),
                (0x02, 4, 1000),
                (0x04, 5, u32::MAX),
                (0x08, 4, 400_007),
                (0x08, 4, 300_000),
                (0x10, 7, u32::MAX),
                (0x20, 0, u32::MAX),
            ])
        );
        // Done: nothing more in the source range.
        assert_eq!(shift_acl(&mut a, &map()).unwrap(), 0);
        assert!(shift_acl(&mut [2, 0, 0], &map()).is_err());
        assert!(shift_acl(&mut acl(&[(1, 7, 0)])[..11], &map()).is_err());
        let mut v1 = acl(&[(1, 7, 0)]);
        v1[0] = 1;
        assert!(shift_acl(&mut v1, &map()).is_err());
    }

    #[test]
    fn only_a_v3_capability_root_id_in_range_is_shifted() {
        let mut v3 = [0u8; 24];
        v3[..4].copy_from_slice(&0x0300_0001u32.to_le_bytes());
        v3[20..].copy_from_slice(&100_000u32.to_le_bytes());
        assert!(shift_caps(&mut v3, &map().uid()));
        assert_eq!(u32::from_le_bytes(v3[20..].try_into().unwrap()), 300_000);
        assert!(!shift_caps(&mut v3, &map().uid()));
        let mut v2 = [0u8; 20];
        v2[..4].copy_from_slice(&0x0200_0001u32.to_le_bytes());
        let before = v2;
        assert!(!shift_caps(&mut v2, &map().uid()));
        assert_eq!(v2, before);
        assert!(!shift_caps(&mut [3, 0, 0], &map().uid()));
    }
}
