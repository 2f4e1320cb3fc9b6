//! The Engine API's answers (and request bodies) as this tool reads them: serde structs for the
//! fields it uses, nothing else. Unknown fields are ignored; a missing field is its default,
//! and so is `null` wherever Go may write it (a nil slice, map or pointer: docker 20.10 to 29
//! differ in which they leave out and which they send as `null`).

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::{Map, Value};

/// `null` or missing as the default.
pub(crate) fn nullable<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// A byte count that may be negative (`-1`: unknown) or `null`: 0 then.
fn size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.map_or(0, |n| u64::try_from(n).unwrap_or(0)))
}

/// What `GET /info` says, as far as this tool cares; missing fields are defaults.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all(deserialize = "PascalCase"))]
pub(crate) struct Info {
    /// Security options, such as `name=seccomp,profile=default` or `name=userns`.
    #[serde(deserialize_with = "nullable")]
    pub(crate) security_options: Vec<String>,
    /// The data root, e.g. `/var/lib/docker/100000.100000` with remapping on.
    pub(crate) docker_root_dir: String,
    /// The engine's version.
    pub(crate) server_version: String,
    /// How many containers run.
    pub(crate) containers_running: u64,
    /// `live-restore` is on: containers keep running while dockerd is stopped.
    pub(crate) live_restore_enabled: bool,
    /// The node's swarm membership.
    #[serde(deserialize_with = "nullable")]
    pub(crate) swarm: SwarmInfo,
    /// The storage driver: a graph driver (`overlay2`, `vfs`, ...) or, with the containerd
    /// image store, the snapshotter (`overlayfs`; see [`Info::image_store`]).
    pub(crate) driver: String,
    /// The driver's facts as `[name, value]` pairs; the containerd image store says
    /// `["driver-type", "io.containerd.snapshotter.v1"]` there.
    #[serde(deserialize_with = "nullable")]
    pub(crate) driver_status: Vec<Vec<String>>,
}

/// `DriverStatus`' `driver-type` of the containerd image store.
pub(crate) const SNAPSHOTTER_TYPE: &str = "io.containerd.snapshotter.v1";

/// `Swarm` in `GET /info`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all(deserialize = "PascalCase"))]
pub(crate) struct SwarmInfo {
    /// `inactive`, `pending`, `active`, `error` or `locked` (empty: not reported).
    pub(crate) local_node_state: String,
    /// The node is a manager.
    pub(crate) control_available: bool,
    /// The node's id in the swarm.
    #[serde(rename(deserialize = "NodeID"))]
    pub(crate) node_id: String,
}

impl SwarmInfo {
    /// The node is in a swarm or joining one (anything but `inactive` or unreported).
    pub(crate) fn member(&self) -> bool {
        !matches!(self.local_node_state.as_str(), "" | "inactive")
    }
}

impl Info {
    /// The image store the engine uses, as this tool names it: `containerd (overlayfs
    /// snapshotter)` for the containerd image store (docker 29's default on fresh installs),
    /// else the graph driver (`overlay2`); None when the engine names no driver.
    pub(crate) fn image_store(&self) -> Option<String> {
        let driver = self.driver.trim();
        if driver.is_empty() {
            return None;
        }
        let containerd = self
            .driver_status
            .iter()
            .any(|kv| kv.len() == 2 && kv[0] == "driver-type" && kv[1] == SNAPSHOTTER_TYPE);
        Some(if containerd {
            containerd_store(driver)
        } else {
            driver.to_string()
        })
    }

    /// Whether user-namespace remapping is on (`name=userns[,...]`, or legacy `userns`).
    pub(crate) fn userns(&self) -> bool {
        self.security_options
            .iter()
            .any(|o| o == "userns" || o == "name=userns" || o.starts_with("name=userns,"))
    }
}

/// The containerd image store with `snapshotter`, as [`Info::image_store`] names it.
pub(crate) fn containerd_store(snapshotter: &str) -> String {
    format!("containerd ({snapshotter} snapshotter)")
}

/// `GET /version`: the platform the engine runs on.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Version {
    /// `linux`.
    pub(crate) os: String,
    /// `amd64`, `arm64`, ...
    pub(crate) arch: String,
}

/// A container as listed by `GET /containers/json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, rename_all(deserialize = "PascalCase"))]
pub(crate) struct Container {
    /// The full id.
    pub(crate) id: String,
    /// Its names, each with a leading `/`.
    #[serde(deserialize_with = "nullable")]
    pub(crate) names: Vec<String>,
    /// The image it runs.
    pub(crate) image: String,
    /// Its state, e.g. `running`.
    pub(crate) state: String,
    /// Its command line as docker shows it.
    #[serde(skip_serializing)]
    pub(crate) command: String,
}

impl Container {
    /// The first name without its leading `/`, else the short (12-character) id.
    pub(crate) fn name(&self) -> &str {
        self.names
            .first()
            .map(|n| n.strip_prefix('/').unwrap_or(n))
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| self.id.get(..12).unwrap_or(&self.id))
    }
}

/// `GET /containers/{id}/json`, the fields read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ContainerInspect {
    /// The full id.
    pub(crate) id: String,
    /// Its name, with a leading `/`.
    pub(crate) name: String,
    /// How it was created.
    #[serde(deserialize_with = "nullable")]
    pub(crate) config: ContainerConfig,
    /// How it runs now.
    #[serde(deserialize_with = "nullable")]
    pub(crate) state: ContainerState,
    /// Its host settings.
    #[serde(deserialize_with = "nullable")]
    pub(crate) host_config: HostConfig,
    /// What is mounted into it.
    #[serde(deserialize_with = "nullable")]
    pub(crate) mounts: Vec<MountPoint>,
}

/// `Config` of an inspected container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ContainerConfig {
    /// The image it was created from, as named then.
    pub(crate) image: String,
    /// `--user` (empty: the image's default).
    pub(crate) user: String,
}

/// `State` of an inspected container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ContainerState {
    /// It runs.
    pub(crate) running: bool,
    /// Its main process on the host (0: none).
    pub(crate) pid: u64,
}

/// `HostConfig` of an inspected container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct HostConfig {
    /// `--privileged`.
    pub(crate) privileged: bool,
    /// `--userns`.
    pub(crate) userns_mode: String,
    /// `--pid`.
    pub(crate) pid_mode: String,
    /// `--network`.
    pub(crate) network_mode: String,
}

/// One of `Mounts` of an inspected container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct MountPoint {
    /// `bind`, `volume`, `tmpfs`, ...
    #[serde(rename = "Type")]
    pub(crate) kind: String,
    /// Read-write.
    #[serde(rename = "RW")]
    pub(crate) rw: bool,
    /// The host path.
    pub(crate) source: String,
    /// Where it is mounted in the container.
    pub(crate) destination: String,
}

/// What `POST /containers/create` is sent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct ContainerCreate {
    /// The image.
    pub(crate) image: String,
    /// The command.
    pub(crate) cmd: Vec<String>,
    /// No network.
    pub(crate) network_disabled: bool,
    /// Its labels.
    pub(crate) labels: Map<String, Value>,
    /// Its host settings.
    pub(crate) host_config: HostConfigCreate,
}

/// `HostConfig` of a container to create; what is unset is left out.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct HostConfigCreate {
    /// `HOST:CONTAINER` bind mounts.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub(crate) binds: Vec<String>,
    /// `--privileged`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub(crate) privileged: bool,
}

/// The answer of `POST /containers/create`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Created {
    pub(crate) id: String,
}

/// The answer of `POST /containers/{id}/wait`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct Waited {
    #[serde(default = "unknown_status")]
    pub(crate) status_code: i64,
}

fn unknown_status() -> i64 {
    -1
}

/// An image as `GET /images/json` lists it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ImageSummary {
    /// Its id (`sha256:…`).
    pub(crate) id: String,
    /// Its tags, `<none>:<none>` included as docker lists it.
    #[serde(deserialize_with = "nullable")]
    pub(crate) repo_tags: Vec<String>,
    /// Its size as the engine counts it.
    #[serde(deserialize_with = "size")]
    pub(crate) size: u64,
    /// With `manifests=1` in the containerd store: the manifests it holds.
    #[serde(deserialize_with = "nullable")]
    pub(crate) manifests: Vec<ImageManifest>,
}

/// One of `Manifests` of a listed image (docker 28 and later, containerd store).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ImageManifest {
    /// `image`, `attestation`, ...
    pub(crate) kind: String,
    /// Its content is in the store.
    pub(crate) available: bool,
    /// For an image manifest: its platform.
    #[serde(deserialize_with = "nullable")]
    pub(crate) image_data: ManifestImageData,
}

/// `ImageData` of a manifest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ManifestImageData {
    /// The OCI platform object (`os`, `architecture`, `variant`), kept as sent.
    pub(crate) platform: Option<Value>,
}

impl ImageManifest {
    /// The platform of an image manifest whose content is there, else None.
    pub(crate) fn available_platform(&self) -> Option<&Value> {
        (self.kind == "image" && self.available)
            .then_some(self.image_data.platform.as_ref())
            .flatten()
            .filter(|p| !p.is_null())
    }
}

/// `GET /images/{name}/json`, the fields read.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct ImageInspect {
    /// Its id in this store.
    pub(crate) id: String,
    /// Its layers.
    #[serde(rename = "RootFS", deserialize_with = "nullable")]
    pub(crate) root_fs: RootFs,
    /// The containerd store's descriptor (null or missing in the graph driver stores).
    pub(crate) descriptor: Option<Value>,
}

impl ImageInspect {
    /// The id is the config digest: the graph driver stores, which show no `Descriptor`.
    pub(crate) fn id_is_config(&self) -> bool {
        self.descriptor.as_ref().is_none_or(Value::is_null)
    }
}

/// `RootFS` of an inspected image.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct RootFs {
    /// The layers' diff IDs.
    #[serde(deserialize_with = "nullable")]
    pub(crate) layers: Vec<String>,
}

/// One message of the JSON stream `POST /images/load` answers.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub(crate) struct LoadMessage {
    /// What went wrong, in a message that reports an error.
    #[serde(deserialize_with = "nullable")]
    pub(crate) error: String,
}

/// `GET /volumes`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct VolumeList {
    #[serde(deserialize_with = "nullable")]
    pub(crate) volumes: Vec<Volume>,
}

/// A volume as listed, inspected or created.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "PascalCase")]
pub(crate) struct Volume {
    /// Its name.
    pub(crate) name: String,
    /// Its driver (`local`, ...).
    pub(crate) driver: String,
    /// Where its data is.
    pub(crate) mountpoint: String,
    /// Its labels.
    #[serde(deserialize_with = "nullable")]
    pub(crate) labels: Map<String, Value>,
    /// Its driver options (`type`, `o`, `device` for the local driver).
    #[serde(deserialize_with = "nullable")]
    pub(crate) options: Map<String, Value>,
}

impl Volume {
    /// Driver option `key` (empty: not set).
    pub(crate) fn option(&self, key: &str) -> &str {
        self.options
            .get(key)
            .and_then(Value::as_str)
            .unwrap_or_default()
    }
}

/// What `POST /volumes/create` is sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "PascalCase")]
pub(crate) struct VolumeCreate<'a> {
    pub(crate) name: &'a str,
    pub(crate) driver: &'a str,
    pub(crate) labels: &'a Map<String, Value>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn null_and_missing_fields_are_defaults_and_unknown_ones_ignored() {
        // Go's nil slices, maps and pointers as docker 20.10 sends them.
        let c: ContainerInspect = serde_json::from_str(
            r#"{"Id":"x","Name":"/web","Config":null,"State":{"Running":true,"Pid":42,"New":1},
                "HostConfig":{"Privileged":true,"UsernsMode":"host"},"Mounts":null,"Extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(
            (c.state.pid, c.state.running, c.config.user.as_str()),
            (42, true, "")
        );
        assert!(c.host_config.privileged && c.mounts.is_empty());
        let i: ImageSummary =
            serde_json::from_str(r#"{"Id":"sha256:a","RepoTags":null,"Size":-1,"Manifests":null}"#)
                .unwrap();
        assert_eq!((i.repo_tags.len(), i.size, i.manifests.len()), (0, 0, 0));
        let v: VolumeList = serde_json::from_str(r#"{"Volumes":null,"Warnings":null}"#).unwrap();
        assert!(v.volumes.is_empty());
        let v: Volume = serde_json::from_str(
            r#"{"Name":"v","Driver":"local","Labels":null,"Options":{"device":"/srv","o":"bind"}}"#,
        )
        .unwrap();
        assert_eq!((v.option("device"), v.option("type")), ("/srv", ""));
        let w: Waited = serde_json::from_str(r#"{"Error":null}"#).unwrap();
        assert_eq!(w.status_code, -1);
        let m: LoadMessage = serde_json::from_str(r#"{"stream":"Loaded image"}"#).unwrap();
        assert!(m.error.is_empty());
    }

    #[test]
    fn an_image_names_its_config_only_without_a_descriptor() {
        let graph: ImageInspect =
            serde_json::from_str(r#"{"Id":"sha256:c","RootFS":{"Layers":["sha256:l"]}}"#).unwrap();
        assert!(graph.id_is_config());
        assert_eq!(graph.root_fs.layers, ["sha256:l"]);
        let null: ImageInspect = serde_json::from_str(r#"{"Id":"i","Descriptor":null}"#).unwrap();
        assert!(null.id_is_config());
        let c8d: ImageInspect =
            serde_json::from_str(r#"{"Id":"sha256:m","Descriptor":{"digest":"sha256:m"}}"#)
                .unwrap();
        assert!(!c8d.id_is_config());
    }

    #[test]
    fn a_create_body_leaves_out_what_is_unset() {
        let mut c = ContainerCreate {
            image: "busybox".into(),
            cmd: vec!["id".into(), "-u".into()],
            network_disabled: true,
            ..ContainerCreate::default()
        };
        c.labels.insert("docker-userns.verify".into(), "1".into());
        assert_eq!(
            serde_json::to_string(&c).unwrap(),
            r#"{"Image":"busybox","Cmd":["id","-u"],"NetworkDisabled":true,"Labels":{"docker-userns.verify":"1"},"HostConfig":{}}"#
        );
        c.host_config.privileged = true;
        c.host_config.binds = vec!["/a:/b".into()];
        assert!(
            serde_json::to_string(&c)
                .unwrap()
                .ends_with(r#""HostConfig":{"Binds":["/a:/b"],"Privileged":true}}"#)
        );
    }
}
