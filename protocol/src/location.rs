//! Where output goes: `s3://bucket/prefix/` or `file:///dir/`. The keys inside it are
//! [`crate::layout`]'s.

use crate::ident::shown;
use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "scheme", rename_all = "lowercase")]
pub enum ObjectLocation {
    /// `prefix` has no leading slash and is either empty or ends with `/`.
    S3 { bucket: String, prefix: String },
    /// An absolute directory; keys become relative paths under it.
    File { root: String },
}

impl ObjectLocation {
    pub fn parse(url: &str) -> Result<Self, String> {
        if let Some(rest) = url.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!(
                    "{} has no bucket: write s3://bucket/prefix/",
                    shown(url)
                ));
            }
            Ok(Self::S3 {
                bucket: bucket.to_string(),
                prefix: normalize_prefix(prefix),
            })
        } else if let Some(rest) = url.strip_prefix("file://") {
            if !rest.starts_with('/') {
                return Err(format!(
                    "{} is not an absolute path: write file:///absolute/dir/",
                    shown(url)
                ));
            }
            let root = rest.trim_end_matches('/');
            Ok(Self::File {
                root: if root.is_empty() {
                    "/".into()
                } else {
                    root.into()
                },
            })
        } else {
            Err(format!(
                "unsupported output {}: use s3://bucket/prefix/ or file:///dir/",
                shown(url)
            ))
        }
    }

    /// The full key (S3) or relative path (file) of `relative` under this location.
    pub fn key(&self, relative: &str) -> String {
        match self {
            Self::S3 { prefix, .. } => format!("{prefix}{relative}"),
            Self::File { .. } => relative.to_string(),
        }
    }

    /// A location for a sub-folder of this one.
    pub fn join(&self, folder: &str) -> Self {
        let folder = normalize_prefix(folder);
        match self {
            Self::S3 { bucket, prefix } => Self::S3 {
                bucket: bucket.clone(),
                prefix: format!("{prefix}{folder}"),
            },
            Self::File { root } => Self::File {
                root: format!("{root}/{}", folder.trim_end_matches('/')),
            },
        }
    }
}

impl fmt::Display for ObjectLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::File { root } => write!(f, "file://{root}/"),
        }
    }
}

fn normalize_prefix(prefix: &str) -> String {
    let p = prefix.trim_matches('/');
    if p.is_empty() {
        String::new()
    } else {
        format!("{p}/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_locations() {
        assert_eq!(
            ObjectLocation::parse("s3://b/exports/x").unwrap(),
            ObjectLocation::S3 {
                bucket: "b".into(),
                prefix: "exports/x/".into()
            }
        );
        assert_eq!(
            ObjectLocation::parse("s3://b").unwrap(),
            ObjectLocation::S3 {
                bucket: "b".into(),
                prefix: "".into()
            }
        );
        assert_eq!(
            ObjectLocation::parse("file:///tmp/out/").unwrap(),
            ObjectLocation::File {
                root: "/tmp/out".into()
            }
        );
        assert!(ObjectLocation::parse("file://relative").is_err());
        assert!(ObjectLocation::parse("gs://x").is_err());
        assert!(ObjectLocation::parse("s3:///p").is_err());
    }

    #[test]
    fn keys_and_sub_folders() {
        let loc = ObjectLocation::parse("s3://b/p/").unwrap();
        assert_eq!(loc.key("x/y"), "p/x/y");
        assert_eq!(
            loc.join("job1"),
            ObjectLocation::S3 {
                bucket: "b".into(),
                prefix: "p/job1/".into()
            }
        );
    }
}
