//! Local-file objects: written to `<root>/<key>.tmp-<random>` and renamed into place on
//! finish, so a reader never sees a partial file and a re-run replaces the old one atomically.

use crate::error::{io_error, TaskError};
use bytes::Bytes;
use std::path::{Component, Path, PathBuf};
use tokio::io::AsyncWriteExt;

pub struct FileWriter {
    file: Option<tokio::fs::File>,
    tmp: PathBuf,
    dest: PathBuf,
    bytes: u64,
    /// Finished or cleaned up: nothing for `Drop` to remove.
    settled: bool,
}

impl FileWriter {
    pub async fn create(root: &str, key: &str) -> Result<Self, TaskError> {
        let dest = resolve(root, key)?;
        if let Some(parent) = dest.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| io_error(format!("creating {}", parent.display()), &e))?;
        }
        let suffix: u64 = rand::random();
        let mut tmp = dest.clone().into_os_string();
        tmp.push(format!(".tmp-{suffix:016x}"));
        let tmp = PathBuf::from(tmp);
        let file = tokio::fs::File::create(&tmp)
            .await
            .map_err(|e| io_error(format!("creating {}", tmp.display()), &e))?;
        Ok(Self {
            file: Some(file),
            tmp,
            dest,
            bytes: 0,
            settled: false,
        })
    }

    pub async fn write_part(&mut self, part: Bytes) -> Result<(), TaskError> {
        let Some(file) = self.file.as_mut() else {
            return Err(TaskError::fatal(format!(
                "{} is already closed",
                self.url()
            )));
        };
        file.write_all(&part)
            .await
            .map_err(|e| io_error(format!("writing {}", self.tmp.display()), &e))?;
        self.bytes += part.len() as u64;
        Ok(())
    }

    pub async fn finish(mut self) -> Result<u64, TaskError> {
        match self.commit().await {
            Ok(()) => {
                self.settled = true;
                Ok(self.bytes)
            }
            Err(e) => {
                self.abort().await;
                Err(e)
            }
        }
    }

    async fn commit(&mut self) -> Result<(), TaskError> {
        if let Some(mut file) = self.file.take() {
            // Durable before visible: a crash after the rename must not leave a torn file.
            file.flush()
                .await
                .and(file.sync_all().await)
                .map_err(|e| io_error(format!("flushing {}", self.tmp.display()), &e))?;
        }
        tokio::fs::rename(&self.tmp, &self.dest)
            .await
            .map_err(|e| io_error(format!("renaming into {}", self.dest.display()), &e))
    }

    pub async fn abort(mut self) {
        self.file = None;
        if let Err(e) = tokio::fs::remove_file(&self.tmp).await {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(path = %self.tmp.display(), error = %e, "could not remove temporary file");
            }
        }
        self.settled = true;
    }

    pub fn url(&self) -> String {
        format!("file://{}", self.dest.display())
    }
}

impl Drop for FileWriter {
    fn drop(&mut self) {
        if !self.settled {
            // Dropped mid-write (task cancelled): remove the partial file synchronously.
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
}

/// `<root>/<key>`, refusing keys that would escape the root.
pub fn resolve(root: &str, key: &str) -> Result<PathBuf, TaskError> {
    let rel = Path::new(key);
    let escapes = key.is_empty()
        || rel
            .components()
            .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir));
    if escapes {
        return Err(TaskError::fatal(format!(
            "object key {key:?} is not a relative path inside {root}"
        )));
    }
    Ok(Path::new(root).join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch() -> PathBuf {
        let n: u64 = rand::random();
        std::env::temp_dir().join(format!("pgfleet-filesink-{n:016x}"))
    }

    fn entries(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = walk(dir)
            .into_iter()
            .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
            .collect();
        v.sort();
        v
    }

    fn walk(dir: &Path) -> Vec<PathBuf> {
        let mut out = Vec::new();
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let p = e.path();
                if p.is_dir() {
                    out.extend(walk(&p));
                } else {
                    out.push(p);
                }
            }
        }
        out
    }

    #[tokio::test]
    async fn writes_atomically() {
        let root = scratch();
        let root_s = root.to_str().unwrap();
        let mut w = FileWriter::create(root_s, "t/part-00001.csv")
            .await
            .unwrap();
        w.write_part(Bytes::from_static(b"a,b\n")).await.unwrap();
        assert!(
            !root.join("t/part-00001.csv").exists(),
            "visible before finish"
        );
        w.write_part(Bytes::from_static(b"1,2\n")).await.unwrap();
        assert_eq!(w.finish().await.unwrap(), 8);
        assert_eq!(
            std::fs::read(root.join("t/part-00001.csv")).unwrap(),
            b"a,b\n1,2\n"
        );
        assert_eq!(entries(&root), vec!["t/part-00001.csv"]);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[tokio::test]
    async fn abort_and_drop_leave_nothing() {
        let root = scratch();
        let root_s = root.to_str().unwrap();
        let mut w = FileWriter::create(root_s, "a.csv").await.unwrap();
        w.write_part(Bytes::from_static(b"x")).await.unwrap();
        w.abort().await;
        let mut w = FileWriter::create(root_s, "b.csv").await.unwrap();
        w.write_part(Bytes::from_static(b"x")).await.unwrap();
        drop(w);
        assert!(entries(&root).is_empty(), "{:?}", entries(&root));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn refuses_escaping_keys() {
        for key in ["../x", "/etc/passwd", "a/../../b", ""] {
            assert!(resolve("/tmp/r", key).is_err(), "{key}");
        }
        assert_eq!(
            resolve("/tmp/r", "s.t/part-00001.csv").unwrap(),
            PathBuf::from("/tmp/r/s.t/part-00001.csv")
        );
    }
}
