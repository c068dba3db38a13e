//! Tables that belong to an extension: an export of a PostGIS database holds
//! `public.spatial_ref_sys`, which `CREATE EXTENSION postgis` already filled in the target. A
//! default restore loads only the rows users added (PostGIS's `pg_extension_config_dump`
//! filter, as pg_dump does) and leaves the extension's own rows alone.

use pgfleet_tests::scenario::{checksums, export_rds_parquet};
use pgfleet_tests::*;
use std::process::Command;

const USER_SRID: i32 = 990_001;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgis_export_restores_with_default_policy() -> anyhow::Result<()> {
    set_aws_env();
    let source = ScratchDb::create("pgfleet_gis_src_").await?;
    let schema = "CREATE EXTENSION IF NOT EXISTS postgis;
        CREATE TABLE places (id bigint PRIMARY KEY, name text, geom geometry(Point, 4326));";
    let src = source.client().await?;
    src.batch_execute(schema).await?;
    src.batch_execute(&format!(
        "INSERT INTO places SELECT g, 'place ' || g, ST_SetSRID(ST_MakePoint(g % 180, g % 90), 4326)
         FROM generate_series(1, 2000) g;
         INSERT INTO spatial_ref_sys (srid, auth_name, auth_srid, srtext, proj4text)
         VALUES ({USER_SRID}, 'pgfleet', {USER_SRID}, 'LOCAL_CS[\"pgfleet test\"]', '+proj=longlat +datum=WGS84 +no_defs');"
    ))
    .await?;
    let target = ScratchDb::create("pgfleet_gis_dst_").await?;
    let dst = target.client().await?;
    dst.batch_execute(schema).await?;
    let extension_rows: i64 = dst
        .query_one("SELECT count(*) FROM spatial_ref_sys", &[])
        .await?
        .get(0);
    assert!(extension_rows > 1000, "PostGIS fills spatial_ref_sys");

    let s3 = s3_client().await;
    let bucket = unique("gis-");
    create_bucket(&s3, &bucket).await?;
    let root = format!("s3://{bucket}/rds/gis/");
    let endpoint = s3_endpoint();
    let dir = std::env::temp_dir().join(unique("pgfleet-gis-"));
    std::fs::create_dir_all(&dir)?;
    export_rds_parquet(&dir, "gis", &source.url, &root, 100_000)?;
    // The export holds the extension's table, as an RDS export of such a database does.
    let keys = list_keys(&s3, &bucket, "rds/gis/").await?;
    assert!(
        keys.iter().any(|k| k.contains("public.spatial_ref_sys")),
        "{keys:?}"
    );

    let restore = dir.join("restore.toml");
    std::fs::write(
        &restore,
        format!(
            r#"kind = "restore"
name = "gis-restore"
[export]
url = "{root}"
database = "{db}"
s3 = {{ endpoint = "{endpoint}", force_path_style = true }}
[target]
url = "{dst}"
"#,
            db = source.name,
            dst = target.url
        ),
    )?;
    let plan = Command::new(bin("coordinator"))
        .args(["plan", restore.to_str().unwrap()])
        .output()?;
    let plan_out = String::from_utf8_lossy(&plan.stdout).into_owned();
    assert!(
        plan.status.success(),
        "plan refused: {plan_out}{}",
        String::from_utf8_lossy(&plan.stderr)
    );
    assert!(
        plan_out.contains("belongs to extension postgis"),
        "plan says what it does with the extension's table:\n{plan_out}"
    );
    let run = Command::new(bin("coordinator"))
        .args(["run", restore.to_str().unwrap(), "--workers", "2"])
        .output()?;
    assert!(
        run.status.success(),
        "restore: {}{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );

    assert_eq!(
        checksums(&src, &["places"]).await?,
        checksums(&dst, &["places"]).await?
    );
    // The extension's rows as they were, plus exactly the one the user added.
    let after: i64 = dst
        .query_one("SELECT count(*) FROM spatial_ref_sys", &[])
        .await?
        .get(0);
    assert_eq!(after, extension_rows + 1);
    let row_sql =
        "SELECT auth_name, auth_srid::text, srtext, proj4text FROM spatial_ref_sys WHERE srid = $1";
    let row =
        |r: tokio_postgres::Row| -> Vec<Option<String>> { (0..4).map(|i| r.get(i)).collect() };
    assert_eq!(
        row(dst.query_one(row_sql, &[&USER_SRID]).await?),
        row(src.query_one(row_sql, &[&USER_SRID]).await?)
    );
    let _ = std::fs::remove_dir_all(&dir);
    source.drop().await?;
    target.drop().await
}
