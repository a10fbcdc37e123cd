//! Where the local stream mapping resumes after a restart: the last dispatched sequence
//! number per shard, as the real event source mapping keeps it across function restarts.
//!
//! Kept in a small file, `localstack/.state/stream-checkpoints/<table>.json`, not in the
//! table: every write to the table is a stream record, so a checkpoint item would wake the
//! poller that wrote it, once per batch, forever. The file names the stream it belongs to;
//! a table deleted and created again has a new stream ARN, and its old checkpoint is ignored
//! (its shards start at TRIM_HORIZON).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// The runner's state directory: `LOCAL_RUNNER_STATE_DIR`, else `localstack/.state` of the
/// checkout the runner was built from (the runner is started from the repository root by
/// the scripts and from `tests/` by the integration tests; both must find the same file).
pub fn state_dir() -> PathBuf {
    std::env::var_os("LOCAL_RUNNER_STATE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../.state"))
}

/// The checkpoint file of a table.
pub fn path_for(table: &str) -> PathBuf {
    state_dir()
        .join("stream-checkpoints")
        .join(format!("{table}.json"))
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Stored {
    stream_arn: String,
    /// Shard id → sequence number of the last record dispatched without failure.
    shards: BTreeMap<String, String>,
}

/// The checkpoints of one stream, written through to their file.
#[derive(Debug)]
pub struct StreamCheckpoint {
    path: PathBuf,
    stored: Stored,
}

impl StreamCheckpoint {
    /// The checkpoints saved for `stream_arn` at `path`; none when the file is missing,
    /// unreadable, or belongs to another stream.
    pub fn load(path: PathBuf, stream_arn: &str) -> StreamCheckpoint {
        let stored = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<Stored>(&bytes).ok())
            .filter(|s| s.stream_arn == stream_arn)
            .unwrap_or_else(|| Stored {
                stream_arn: stream_arn.to_string(),
                shards: BTreeMap::new(),
            });
        StreamCheckpoint { path, stored }
    }

    /// The last dispatched sequence number of a shard, if it was ever checkpointed.
    pub fn position(&self, shard: &str) -> Option<&str> {
        self.stored.shards.get(shard).map(String::as_str)
    }

    /// Record that a shard is dispatched up to and including `sequence`, and save. The
    /// file is replaced whole (write, then rename), so a crash leaves the old or the new
    /// checkpoint, never half of one.
    pub fn advance(&mut self, shard: &str, sequence: &str) -> Result<(), String> {
        self.stored
            .shards
            .insert(shard.to_string(), sequence.to_string());
        let dir = self.path.parent().unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
        let json = serde_json::to_vec_pretty(&self.stored).map_err(|e| e.to_string())?;
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, json).map_err(|e| format!("write {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &self.path)
            .map_err(|e| format!("rename to {}: {e}", self.path.display()))
    }
}

/// Forget a table's checkpoints (teardown); a missing file is fine.
pub fn remove(table: &str) {
    let _ = std::fs::remove_file(path_for(table));
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        std::env::temp_dir()
            .join(format!("checkpoint-test-{}", uuid::Uuid::new_v4().simple()))
            .join(format!("{name}.json"))
    }

    #[test]
    fn a_saved_position_is_read_back_for_the_same_stream_only() {
        let path = temp_path("t-events");
        let mut cp = StreamCheckpoint::load(path.clone(), "arn:stream/1");
        assert_eq!(cp.position("shard-1"), None);
        cp.advance("shard-1", "100").expect("save");
        cp.advance("shard-1", "205").expect("save");
        cp.advance("shard-2", "7").expect("save");

        let again = StreamCheckpoint::load(path.clone(), "arn:stream/1");
        assert_eq!(again.position("shard-1"), Some("205"));
        assert_eq!(again.position("shard-2"), Some("7"));
        // The table was created again: a new stream starts from its beginning.
        let recreated = StreamCheckpoint::load(path.clone(), "arn:stream/2");
        assert_eq!(recreated.position("shard-1"), None);
        let _ = std::fs::remove_dir_all(path.parent().expect("dir"));
    }
}
