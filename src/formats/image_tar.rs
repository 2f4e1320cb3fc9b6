//! What an exported image tar (`docker save`, `GET /images/get`: docker's legacy layout or
//! OCI) says about the image, whatever store it came from: read as it streams by, keeping
//! only the small JSON documents (manifests, indexes, configs).

use serde_json::Value;

/// What an exported image tar says about the image, whatever store made it: the digest of its
/// config (the overlay2 store's image id), the diff IDs its config lists (`rootfs.diff_ids`,
/// which `RootFS.Layers` shows), and the manifests and indexes in it that lead to that config
/// (the ids the containerd store gives the image).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `sha256:…` of the config.
    pub(crate) config: Option<String>,
    /// Its layers' diff IDs.
    pub(crate) diff_ids: Vec<String>,
    /// Manifest and index digests that lead to that config.
    pub(crate) manifests: Vec<String>,
    /// Every config digest `manifest.json` names (an export of several platforms names several).
    pub(crate) configs: Vec<String>,
}

/// Reads an image tar as it streams by (`docker save` of either store: the legacy layout with
/// `manifest.json` and `HEX.json` configs, or the OCI layout with `index.json` and
/// `blobs/sha256/HEX`), keeping only the small files it needs; layers pass through unread.
#[derive(Debug, Default)]
pub(crate) struct TarReader {
    /// Bytes of a header not complete yet.
    head: Vec<u8>,
    /// Bytes left of the current entry's data, and of its padding.
    left: u64,
    pad: u64,
    /// The current entry's name and whether its data is kept.
    name: String,
    keep: Option<Vec<u8>>,
    /// A name given by a GNU `L` or a pax `x` entry, for the next entry.
    long_name: Option<String>,
    /// What the current entry is (`0` a file, `L`, `x`, …).
    kind: u8,
    /// Kept files by name.
    files: std::collections::BTreeMap<String, Vec<u8>>,
    kept: usize,
    /// The end (two zero blocks) was seen, or the stream is not a tar.
    done: bool,
}

/// Files larger than this are not kept (manifests, indexes and configs are a few KiB).
const KEEP_MAX: u64 = 4 << 20;
/// Nor more than this in all.
const KEEP_TOTAL: usize = 64 << 20;

impl TarReader {
    /// Takes the next bytes of the stream.
    pub(crate) fn feed(&mut self, mut buf: &[u8]) {
        while !buf.is_empty() && !self.done {
            if self.left > 0 {
                let n = (self.left.min(buf.len() as u64)) as usize;
                // Only JSON documents are kept: a small layer is let through as it starts.
                if matches!(self.kind, b'0' | 0)
                    && self.keep.as_ref().is_some_and(Vec::is_empty)
                    && !matches!(buf[0], b'{' | b'[')
                {
                    self.keep = None;
                }
                if let Some(k) = &mut self.keep {
                    k.extend_from_slice(&buf[..n]);
                }
                self.left -= n as u64;
                buf = &buf[n..];
                if self.left == 0 {
                    self.entry_done();
                }
            } else if self.pad > 0 {
                let n = (self.pad.min(buf.len() as u64)) as usize;
                self.pad -= n as u64;
                buf = &buf[n..];
            } else {
                let n = (512 - self.head.len()).min(buf.len());
                self.head.extend_from_slice(&buf[..n]);
                buf = &buf[n..];
                if self.head.len() == 512 {
                    let h = std::mem::take(&mut self.head);
                    self.header(&h);
                }
            }
        }
    }

    fn header(&mut self, h: &[u8]) {
        if h.iter().all(|&b| b == 0) {
            // End of archive (or padding between): a second zero block ends it.
            if self.kind == 0xff {
                self.done = true;
            }
            self.kind = 0xff;
            return;
        }
        let field = |a: usize, b: usize| {
            let f = &h[a..b];
            let end = f.iter().position(|&c| c == 0).unwrap_or(f.len());
            String::from_utf8_lossy(&f[..end]).into_owned()
        };
        let size = if h[124] & 0x80 != 0 {
            h[125..136]
                .iter()
                .fold(0u64, |s, &b| s.saturating_mul(256) | u64::from(b))
        } else {
            let s = field(124, 136);
            match u64::from_str_radix(s.trim_matches(|c: char| c == ' ' || c == '\0'), 8) {
                Ok(v) => v,
                Err(_) if s.trim().is_empty() => 0,
                Err(_) => {
                    self.done = true;
                    return;
                }
            }
        };
        let mut name = field(0, 100);
        if &h[257..262] == b"ustar" {
            let prefix = field(345, 500);
            if !prefix.is_empty() {
                name = format!("{prefix}/{name}");
            }
        }
        self.kind = h[156];
        if let Some(long) = self.long_name.take()
            && !matches!(self.kind, b'L' | b'x')
        {
            name = long;
        }
        self.name = name.trim_start_matches("./").to_string();
        self.left = size;
        self.pad = (512 - size % 512) % 512;
        let wanted = match self.kind {
            b'L' | b'x' => true,
            b'0' | 0 => {
                size <= KEEP_MAX
                    && (self.name == "manifest.json"
                        || self.name == "index.json"
                        || (self.kept + size as usize <= KEEP_TOTAL
                            && (self.name.ends_with(".json") || self.name.starts_with("blobs/"))))
            }
            _ => false,
        };
        self.keep = wanted.then(Vec::new);
        if size == 0 {
            self.entry_done();
        }
    }

    fn entry_done(&mut self) {
        let Some(data) = self.keep.take() else {
            return;
        };
        match self.kind {
            b'L' => {
                let end = data.iter().position(|&c| c == 0).unwrap_or(data.len());
                self.long_name = Some(String::from_utf8_lossy(&data[..end]).into_owned());
            }
            b'x' => {
                // Records "LEN path=VALUE\n".
                for rec in String::from_utf8_lossy(&data).lines() {
                    if let Some((_, kv)) = rec.split_once(' ')
                        && let Some(p) = kv.strip_prefix("path=")
                    {
                        self.long_name = Some(p.to_string());
                    }
                }
            }
            _ => {
                self.kept += data.len();
                self.files.insert(self.name.clone(), data);
            }
        }
    }

    fn json(&self, name: &str) -> Option<Value> {
        serde_json::from_slice(self.files.get(name)?).ok()
    }

    /// The file a `blobs/sha256/HEX` or `HEX.json` reference, or a digest, names.
    fn blob(&self, digest: &str) -> Option<Value> {
        let hex = digest.strip_prefix("sha256:")?;
        self.json(&format!("blobs/sha256/{hex}"))
    }

    /// What the stream said about the image (the first one `manifest.json` names).
    pub(crate) fn identity(&self) -> Identity {
        let mut id = Identity::default();
        let entries = self.json("manifest.json");
        for e in entries
            .as_ref()
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(c) = e.get("Config").and_then(Value::as_str) else {
                continue;
            };
            let hex = c
                .rsplit('/')
                .next()
                .unwrap_or_default()
                .trim_end_matches(".json");
            if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                id.configs.push(format!("sha256:{hex}"));
            }
            if id.config.is_none() {
                id.config = id.configs.last().cloned();
                let cfg = self.json(c.trim_start_matches("./"));
                id.diff_ids = cfg
                    .as_ref()
                    .and_then(|v| v.pointer("/rootfs/diff_ids"))
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect();
            }
        }
        if let Some(config) = &id.config {
            let top = self.json("index.json");
            for m in top
                .as_ref()
                .and_then(|v| v.get("manifests"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(d) = m.get("digest").and_then(Value::as_str) {
                    self.leads_to(d, config, 0, &mut id.manifests);
                }
            }
        }
        id
    }

    /// Whether manifest or index `digest` leads to `config`; those that do are added to `out`.
    fn leads_to(&self, digest: &str, config: &str, depth: u32, out: &mut Vec<String>) -> bool {
        let Some(v) = self.blob(digest) else {
            return false;
        };
        let mut yes = v.pointer("/config/digest").and_then(Value::as_str) == Some(config);
        if depth < 4 {
            for m in v
                .get("manifests")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(d) = m.get("digest").and_then(Value::as_str) {
                    yes |= self.leads_to(d, config, depth + 1, out);
                }
            }
        }
        if yes && !out.iter().any(|o| o == digest) {
            out.push(digest.to_string());
        }
        yes
    }
}

impl std::io::Write for TarReader {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.feed(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tar entry: a ustar header (name, size, type) and the data, padded.
    fn entry(name: &str, kind: u8, data: &[u8]) -> Vec<u8> {
        let mut h = [0u8; 512];
        h[..name.len().min(100)].copy_from_slice(&name.as_bytes()[..name.len().min(100)]);
        h[100..107].copy_from_slice(b"0000644");
        h[124..135].copy_from_slice(format!("{:011o}", data.len()).as_bytes());
        h[156] = kind;
        h[257..263].copy_from_slice(b"ustar\0");
        let mut out = h.to_vec();
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
        out
    }

    fn hex(c: char) -> String {
        std::iter::repeat_n(c, 64).collect()
    }

    /// An OCI layout as either store exports it: blobs first, index.json and manifest.json last.
    fn oci(config: &str, manifest: &str, layer_len: usize) -> Vec<u8> {
        let cfg = r#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":["sha256:d1","sha256:d2"]}}"#;
        let man =
            format!(r#"{{"schemaVersion":2,"config":{{"digest":"sha256:{config}"}},"layers":[]}}"#);
        let index =
            format!(r#"{{"schemaVersion":2,"manifests":[{{"digest":"sha256:{manifest}"}}]}}"#);
        let mut t = entry("blobs/", b'5', b"");
        t.extend(entry(
            &format!("blobs/sha256/{}", hex('a')),
            b'0',
            &vec![7u8; layer_len],
        ));
        t.extend(entry(
            &format!("blobs/sha256/{config}"),
            b'0',
            cfg.as_bytes(),
        ));
        t.extend(entry(
            &format!("blobs/sha256/{manifest}"),
            b'0',
            man.as_bytes(),
        ));
        t.extend(entry("index.json", b'0', index.as_bytes()));
        t.extend(entry(
            "manifest.json",
            b'0',
            format!(r#"[{{"Config":"blobs/sha256/{config}","RepoTags":null,"Layers":[]}}]"#)
                .as_bytes(),
        ));
        t.extend([0u8; 1024]);
        t
    }

    #[test]
    fn an_oci_export_gives_the_config_digest_diff_ids_and_manifest_in_any_chunking() {
        let (c, m) = (hex('c'), hex('e'));
        let tar = oci(&c, &m, 5000);
        let want = Identity {
            config: Some(format!("sha256:{c}")),
            diff_ids: vec!["sha256:d1".into(), "sha256:d2".into()],
            manifests: vec![format!("sha256:{m}")],
            configs: vec![format!("sha256:{c}")],
        };
        for step in [1, 7, 511, 512, 513, 4096, tar.len()] {
            let mut r = TarReader::default();
            for chunk in tar.chunks(step) {
                r.feed(chunk);
            }
            assert_eq!(r.identity(), want, "chunks of {step}");
            assert!(r.done, "chunks of {step}");
        }
    }

    #[test]
    fn small_layers_are_not_kept_and_do_not_crowd_out_the_documents() {
        let (c, m) = (hex('c'), hex('e'));
        let mut tar = Vec::new();
        // 80 MiB of small layers (more than KEEP_TOTAL), before the config and manifests.
        for n in 0..20u8 {
            tar.extend(entry(
                &format!("blobs/sha256/0{n:063}"),
                b'0',
                &vec![n; 4 << 20],
            ));
        }
        tar.extend(oci(&c, &m, 10));
        let mut r = TarReader::default();
        for chunk in tar.chunks(1 << 20) {
            r.feed(chunk);
        }
        assert!(r.kept < 1 << 20, "kept {} bytes", r.kept);
        assert_eq!(r.identity().config, Some(format!("sha256:{c}")));
        assert_eq!(r.identity().diff_ids.len(), 2);
    }

    #[test]
    fn a_legacy_export_names_its_config_file_by_digest() {
        let c = hex('b');
        let cfg = r#"{"rootfs":{"diff_ids":["sha256:d1"]}}"#;
        let mut tar = entry(&format!("{}/layer.tar", hex('f')), b'0', &[1u8; 2000]);
        tar.extend(entry(&format!("{c}.json"), b'0', cfg.as_bytes()));
        tar.extend(entry(
            "manifest.json",
            b'0',
            format!(r#"[{{"Config":"{c}.json","RepoTags":["a:1"],"Layers":["x/layer.tar"]}}]"#)
                .as_bytes(),
        ));
        let mut r = TarReader::default();
        r.feed(&tar);
        let id = r.identity();
        assert_eq!(id.config, Some(format!("sha256:{c}")));
        assert_eq!(id.diff_ids, ["sha256:d1"]);
        assert!(id.manifests.is_empty());
    }

    #[test]
    fn long_names_from_gnu_and_pax_entries_name_the_next_entry() {
        let c = hex('c');
        let cfg = br#"{"rootfs":{"diff_ids":["sha256:d9"]}}"#;
        let long = format!("./blobs/sha256/{c}");
        let mut tar = entry("././@LongLink", b'L', format!("{long}\0").as_bytes());
        tar.extend(entry("short", b'0', cfg));
        let rec = "path=manifest.json\n";
        let rec = format!("{} {rec}", rec.len() + 3);
        tar.extend(entry("PaxHeaders/x", b'x', rec.as_bytes()));
        tar.extend(entry(
            "other",
            b'0',
            format!(r#"[{{"Config":"blobs/sha256/{c}"}}]"#).as_bytes(),
        ));
        let mut r = TarReader::default();
        r.feed(&tar);
        let id = r.identity();
        assert_eq!(id.config, Some(format!("sha256:{c}")));
        assert_eq!(id.diff_ids, ["sha256:d9"]);
    }

    #[test]
    fn garbage_gives_no_identity_and_no_panic() {
        for junk in [vec![], vec![0xffu8; 2000], b"not a tar at all".repeat(100)] {
            let mut r = TarReader::default();
            r.feed(&junk);
            assert_eq!(r.identity().config, None);
        }
        // A manifest whose config is not a digest names none.
        let mut r = TarReader::default();
        r.feed(&entry(
            "manifest.json",
            b'0',
            br#"[{"Config":"../../etc/passwd"}]"#,
        ));
        assert_eq!(r.identity().config, None);
    }
}
