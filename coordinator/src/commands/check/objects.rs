//! The object store: the export's write probe, the restore's export metadata.

use super::*;

/// What the write probe writes.
pub(super) const PROBE_BODY: &[u8] =
    b"pgfleet check: a write probe, deleted right after it was written\n";

pub(super) async fn output(ctx: &Clients, spec: &ExportSpec, limit: Duration) -> Line {
    let location = match spec.output.location() {
        Ok(l) => l,
        Err(e) => {
            return Line {
                status: Status::Fail,
                label: "output".into(),
                detail: e,
            }
        }
    };
    let label = format!("output {location}");
    let on_timeout = object_store_advice(&location, "");
    let check = write_probe(ctx, &location, spec);
    bounded(label, limit, &on_timeout, check).await
}

/// Put one small object under the output prefix and delete it again. A file:// output's
/// folders the probe had to create are removed again too.
pub(super) async fn write_probe(
    ctx: &Clients,
    location: &ObjectLocation,
    spec: &ExportSpec,
) -> Outcome {
    let key = format!(
        "_pgfleet-check-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let created = match location {
        ObjectLocation::File { root } => missing_dirs(Path::new(root)).await,
        ObjectLocation::S3 { .. } => Vec::new(),
    };
    let s3 = &spec.output.s3;
    let put = fleet_io::sink::put_object(
        ctx,
        location,
        s3,
        &key,
        Bytes::from_static(PROBE_BODY),
        "text/plain",
    )
    .await;
    if let Err(e) = put {
        remove_dirs(&created).await;
        return fail(format!(
            "cannot write there: {e} — {}",
            object_store_advice(location, &e.message)
        ));
    }
    let url = fleet_io::sink::object_url(location, &key);
    let deleted = fleet_io::sink::delete_object(ctx, location, s3, &key).await;
    remove_dirs(&created).await;
    match deleted {
        Ok(()) => ok(format!("wrote and deleted a probe object ({key})")),
        Err(e) => (
            Status::Warn,
            format!(
                "writable, but the probe {url} could not be deleted: {e} — delete it by hand (exports themselves never delete objects)"
            ),
        ),
    }
}

/// `dir` and its ancestors that do not exist, deepest first.
pub(super) async fn missing_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut missing = Vec::new();
    let mut at = Some(dir);
    while let Some(d) = at {
        if d.as_os_str().is_empty() || tokio::fs::try_exists(d).await.unwrap_or(true) {
            break;
        }
        missing.push(d.to_path_buf());
        at = d.parent();
    }
    missing
}

/// Remove folders (deepest first) if they are empty; best effort.
pub(super) async fn remove_dirs(dirs: &[PathBuf]) {
    for d in dirs {
        if tokio::fs::remove_dir(d).await.is_err() {
            break;
        }
    }
}

/// What to do about a failed object-store request, from its message.
pub(super) fn object_store_advice(location: &ObjectLocation, message: &str) -> String {
    let ObjectLocation::S3 { bucket, .. } = location else {
        return if message.contains("ermission denied") || message.contains("Read-only") {
            "make the folder writable by this user, or fix [output] url".into()
        } else {
            "check that the folder can be created and written, or fix [output] url".into()
        };
    };
    let credentials = "check the AWS credentials (AWS_PROFILE, AWS_ACCESS_KEY_ID / \
                       AWS_SECRET_ACCESS_KEY, the instance role)";
    if message.contains("NoSuchBucket") {
        format!("bucket {bucket} does not exist: create it, or fix [output] url")
    } else if message.contains("InvalidAccessKeyId")
        || message.contains("SignatureDoesNotMatch")
        || message.to_ascii_lowercase().contains("credential")
    {
        credentials.into()
    } else if message.contains("AccessDenied") || message.contains("AllAccessDisabled") {
        format!("{credentials}; they need s3:PutObject under the prefix (and s3:DeleteObject for this probe)")
    } else if message.contains("PermanentRedirect")
        || message.contains("AuthorizationHeaderMalformed")
    {
        "the bucket is in another region: set [output] s3.region or AWS_REGION".into()
    } else {
        "check the bucket, the region and [output] s3.endpoint, and that this machine reaches S3"
            .into()
    }
}

pub(super) async fn export(ctx: &Clients, spec: &RestoreSpec, limit: Duration) -> Line {
    let root = match spec.export_location() {
        Ok(l) => l,
        Err(e) => {
            return Line {
                status: Status::Fail,
                label: "export".into(),
                detail: e,
            }
        }
    };
    let label = format!("export {root} (database {:?})", spec.export.database);
    let on_timeout = object_store_advice(&root, "");
    // A listing grows with the export: give it more time than a connect.
    let check = export_metadata(ctx, &root, spec);
    bounded(label, limit * 3, &on_timeout, check).await
}

pub(super) async fn export_metadata(
    ctx: &Clients,
    root: &ObjectLocation,
    spec: &RestoreSpec,
) -> Outcome {
    let e = &spec.export;
    let inventory =
        match rds::discover_metadata(ctx, root, &e.s3, &e.database, e.require_success).await {
            Ok(i) => i,
            // These say what to do already.
            Err(err) => return fail(format!("{err:#}")),
        };
    let bytes: u64 = inventory
        .tables
        .iter()
        .flat_map(|t| &t.files)
        .map(|f| f.size)
        .sum();
    let found = format!(
        "{} table(s), {} file(s), {:.1} MiB",
        inventory.tables.len(),
        inventory.total_files(),
        bytes as f64 / 1048576.0
    );
    if let Some(first) = inventory.problems.first() {
        return fail(format!(
            "{found}; {} problem(s), the first: {} — `coordinator plan` lists them all",
            inventory.problems.len(),
            protocol::ident::one_line(first, 300)
        ));
    }
    if inventory.tables.is_empty() {
        return fail(format!(
            "{found}: no exported table of database {:?} — check [export] database",
            e.database
        ));
    }
    let id = inventory
        .export_id
        .as_deref()
        .map(|id| format!("export {id}: "))
        .unwrap_or_default();
    match inventory.warnings.len() {
        0 => ok(format!("{id}{found}")),
        w => ok(format!(
            "{id}{found}; {w} warning(s): `coordinator plan` shows them"
        )),
    }
}

// ---- error text ----------------------------------------------------------------------------
