//! The deployment files stay in step with the binaries:
//! - `deploy/aws/pgfleet-workers.yaml` passes `cfn-lint` and has the pieces scale-in relies on
//!   (lifecycle hook, target tracking on the backlog metric, no secret in user data);
//! - every command, subcommand, `--flag` and `PGFLEET_*` variable that `docker-compose.yml` (and
//!   the AWS template) hands to a pgfleet binary exists in that binary's `--help`;
//! - every file the README links to is in the repository.

use pgfleet_tests::bin;
use serde_yaml::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

const TEMPLATE: &str = "deploy/aws/pgfleet-workers.yaml";
const CFN_LINT_INSTALL: &str = "python3 -m pip install 'cfn-lint==1.51.0'";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn help(binary: &str, args: &[&str]) -> String {
    let out = Command::new(bin(binary))
        .args(args)
        .arg("--help")
        .output()
        .unwrap_or_else(|e| panic!("running {binary} {args:?} --help: {e}"));
    assert!(
        out.status.success(),
        "`{binary} {} --help` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Subcommand names listed under `Commands:` in a clap help text.
fn subcommands(help: &str) -> BTreeSet<String> {
    help.lines()
        .skip_while(|l| l.trim() != "Commands:")
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// `--flag` appears in the help as a whole option name.
fn has_flag(help: &str, flag: &str) -> bool {
    help.match_indices(flag).any(|(i, _)| {
        let before_ok = i == 0 || help.as_bytes()[i - 1].is_ascii_whitespace();
        let after = help.as_bytes().get(i + flag.len()).copied();
        let after_ok =
            !matches!(after, Some(c) if c.is_ascii_alphanumeric() || c == b'-' || c == b'_');
        before_ok && after_ok
    })
}

/// `NAME` is documented as the environment variable of some option (`[env: NAME=…]`, which
/// help wrapped to the terminal may break across lines).
fn has_env(help: &str, name: &str) -> bool {
    let flat = help.split_whitespace().collect::<Vec<_>>().join(" ");
    flat.contains(&format!("[env: {name}=")) || flat.contains(&format!("[env: {name}]"))
}

/// Check one invocation of a pgfleet binary and the PGFLEET_* variables given to it.
/// Returns the problems found, each naming `what` (the service or file).
fn check_invocation(what: &str, argv: &[String], env: &[String]) -> Vec<String> {
    let mut problems = Vec::new();
    let Some(program) = argv.first() else {
        return vec![format!("{what}: empty command")];
    };
    let binary = Path::new(program)
        .file_name()
        .and_then(|s| s.to_str())
        .unwrap_or(program)
        .to_string();
    if binary != "coordinator" && binary != "worker" {
        return vec![format!(
            "{what}: runs `{program}`, which is neither `coordinator` nor `worker`"
        )];
    }
    let top = help(&binary, &[]);
    let mut helps = vec![top.clone()];
    let mut sub = None;
    let mut rest = argv[1..].iter().peekable();
    while let Some(arg) = rest.next() {
        if let Some(flag) = arg.strip_prefix("--") {
            let name = format!("--{}", flag.split('=').next().unwrap_or(flag));
            if !helps.iter().any(|h| has_flag(h, &name)) {
                problems.push(format!(
                    "{what}: `{binary}{}` has no option {name}",
                    sub.as_ref().map(|s| format!(" {s}")).unwrap_or_default()
                ));
            } else if !flag.contains('=') {
                // Skip the flag's value unless the option takes none (only --help/--version here).
                if let Some(next) = rest.peek() {
                    if !next.starts_with('-') {
                        rest.next();
                    }
                }
            }
        } else if arg.starts_with('-') {
            // Short options: only what clap documents as `-x,`.
            if !helps.iter().any(|h| h.contains(&format!("{arg}, --"))) {
                problems.push(format!("{what}: `{binary}` has no option {arg}"));
            }
        } else if binary == "coordinator" && sub.is_none() {
            if !subcommands(&top).contains(arg.as_str()) {
                problems.push(format!("{what}: `coordinator` has no subcommand `{arg}`"));
                break;
            }
            helps = vec![help(&binary, &[arg.as_str()])];
            sub = Some(arg.clone());
        }
        // Anything else is a positional argument (a spec path, a job id).
    }
    if binary == "coordinator" && sub.is_none() {
        problems.push(format!("{what}: `coordinator` needs a subcommand"));
    }
    for name in env {
        if !helps.iter().any(|h| has_env(h, name)) {
            problems.push(format!(
                "{what}: sets {name}, which `{binary}{} --help` does not list",
                sub.as_ref().map(|s| format!(" {s}")).unwrap_or_default()
            ));
        }
    }
    problems
}

fn string_list(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split_whitespace().map(str::to_string).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|i| match i {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Bool(b) => b.to_string(),
                other => panic!("unexpected command item {other:?}"),
            })
            .collect(),
        Value::Null => Vec::new(),
        other => panic!("unexpected command {other:?}"),
    }
}

/// Names of the variables in a compose `environment:` (map or `KEY=value` list).
fn env_names(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Mapping(m)) => m
            .keys()
            .filter_map(|k| k.as_str().map(str::to_string))
            .collect(),
        Some(Value::Sequence(items)) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(|s| s.split('=').next().unwrap_or(s).to_string())
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn compose_commands_flags_and_env_exist_in_help() {
    let path = repo_root().join("docker-compose.yml");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let mut doc: Value = serde_yaml::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    doc.apply_merge().expect("resolving `<<:` merge keys");
    let services = doc
        .get("services")
        .and_then(Value::as_mapping)
        .expect("docker-compose.yml has no services");

    let mut problems = Vec::new();
    let mut checked = BTreeSet::new();
    for (name, svc) in services {
        let name = name.as_str().unwrap_or("?").to_string();
        let mut argv = string_list(svc.get("entrypoint").unwrap_or(&Value::Null));
        argv.extend(string_list(svc.get("command").unwrap_or(&Value::Null)));
        let env: Vec<String> = env_names(svc.get("environment"))
            .into_iter()
            .filter(|n| n.starts_with("PGFLEET_"))
            .collect();
        let runs_pgfleet = argv
            .first()
            .map(|p| p.ends_with("coordinator") || p.ends_with("worker"))
            .unwrap_or(false);
        let pgfleet_image = svc.get("image").and_then(Value::as_str) == Some("pgfleet:local");
        if runs_pgfleet || pgfleet_image {
            if argv.is_empty() {
                problems.push(format!(
                    "service {name}: uses the pgfleet image without a command"
                ));
                continue;
            }
            problems.extend(check_invocation(&format!("service {name}"), &argv, &env));
            checked.insert(argv[0].clone());
        } else if !env.is_empty() {
            problems.push(format!(
                "service {name}: sets {env:?} but runs no pgfleet binary"
            ));
        }
        // A Dockerfile the compose file builds from must exist.
        if let Some(df) = svc
            .get("build")
            .and_then(|b| b.get("dockerfile"))
            .and_then(Value::as_str)
        {
            if !repo_root().join(df).exists() {
                problems.push(format!("service {name}: build.dockerfile {df} is missing"));
            }
        }
    }
    assert!(
        checked.contains("coordinator") && checked.contains("worker"),
        "docker-compose.yml should run both a coordinator and a worker service; ran {checked:?}"
    );
    assert!(
        problems.is_empty(),
        "docker-compose.yml disagrees with the binaries:\n  {}",
        problems.join("\n  ")
    );
}

/// A Dockerfile's stages: (name, base image, instructions), continuation lines joined.
fn dockerfile_stages(text: &str) -> Vec<(String, String, Vec<String>)> {
    let mut joined = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let line = line.trim();
        if current.is_empty() && (line.is_empty() || line.starts_with('#')) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                current.push_str(head);
                current.push(' ');
            }
            None => {
                current.push_str(line);
                joined.push(std::mem::take(&mut current));
            }
        }
    }
    let mut stages: Vec<(String, String, Vec<String>)> = Vec::new();
    for instruction in joined {
        let words: Vec<&str> = instruction.split_whitespace().collect();
        if words.first().map(|w| w.eq_ignore_ascii_case("FROM")) == Some(true) {
            let base = words.get(1).unwrap_or(&"").to_string();
            let name = match words.get(2) {
                Some(w) if w.eq_ignore_ascii_case("AS") => words.get(3).unwrap_or(&"").to_string(),
                _ => String::new(),
            };
            stages.push((name, base, Vec::new()));
        } else if let Some(stage) = stages.last_mut() {
            stage.2.push(instruction);
        }
    }
    stages
}

/// The image the compose file runs is static: the default (last) stage is `scratch` with only
/// our binaries and the CA bundle, the build stage goes through build-static.sh (which refuses
/// dynamically linked binaries), it runs as a non-root uid, and nothing needs a shell (none in
/// scratch). Building it needs Docker; build-static.sh + check-static.sh run the same binaries
/// without it.
#[test]
fn dockerfile_builds_a_static_scratch_image() {
    let path = repo_root().join("deploy/docker/Dockerfile");
    let text = std::fs::read_to_string(&path).expect("read the Dockerfile");
    let stages = dockerfile_stages(&text);
    let (name, base, runtime) = stages.last().expect("the Dockerfile has stages");
    assert_eq!(
        base, "scratch",
        "the default stage {name} must be FROM scratch"
    );
    let builder = stages
        .iter()
        .find(|(n, _, _)| n == "builder")
        .expect("a `builder` stage");
    assert!(
        builder
            .2
            .iter()
            .any(|i| i.starts_with("RUN") && i.contains("deploy/docker/build-static.sh /out")),
        "the builder stage must build through deploy/docker/build-static.sh: {:?}",
        builder.2
    );
    for script in [
        "deploy/docker/build-static.sh",
        "deploy/docker/check-static.sh",
    ] {
        let meta = std::fs::metadata(repo_root().join(script)).expect(script);
        use std::os::unix::fs::PermissionsExt;
        assert!(
            meta.permissions().mode() & 0o111 != 0,
            "{script} is not executable"
        );
    }
    let mut copied = BTreeSet::new();
    for i in runtime {
        let words: Vec<&str> = i.split_whitespace().collect();
        match words.first().map(|w| w.to_ascii_uppercase()).as_deref() {
            Some("COPY") => {
                assert_eq!(
                    words.get(1),
                    Some(&"--from=builder"),
                    "runtime COPY not from the builder: {i}"
                );
                copied.extend(words[2..words.len() - 1].iter().map(|s| s.to_string()));
            }
            Some("RUN") => panic!("scratch has no shell to RUN in: {i}"),
            Some("USER") => {
                let uid: u32 = words[1]
                    .split(':')
                    .next()
                    .unwrap()
                    .parse()
                    .expect("numeric USER (no /etc/passwd in scratch)");
                assert!(uid != 0, "the image must not run as root");
            }
            Some("CMD") | Some("ENTRYPOINT") => {
                assert!(i.contains("[\""), "exec form needed (no shell): {i}");
            }
            _ => {}
        }
    }
    let expected: BTreeSet<String> = [
        "/etc/ssl/certs/ca-certificates.crt",
        "/out/coordinator",
        "/out/worker",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(
        copied, expected,
        "the runtime image should hold exactly the CA bundle and the two binaries"
    );
    assert!(
        runtime.iter().any(|i| i.contains("USER")),
        "the runtime stage sets no USER"
    );

    // Compose services built from this image run its binaries directly (exec form, no shell).
    let compose: Value = serde_yaml::from_str(
        &std::fs::read_to_string(repo_root().join("docker-compose.yml")).expect("compose file"),
    )
    .expect("compose YAML");
    let mut compose = compose;
    compose.apply_merge().expect("merge keys");
    for (svc_name, svc) in compose["services"].as_mapping().expect("services") {
        if svc.get("image").and_then(Value::as_str) != Some("pgfleet:local") {
            continue;
        }
        let argv = string_list(svc.get("command").unwrap_or(&Value::Null));
        assert!(
            matches!(
                argv.first().map(String::as_str),
                Some("coordinator" | "worker")
            ),
            "service {svc_name:?} runs {argv:?}: the scratch image has only coordinator and worker"
        );
        assert!(
            svc.get("entrypoint").is_none(),
            "service {svc_name:?} sets an entrypoint"
        );
        assert!(svc.get("healthcheck").is_none(), "service {svc_name:?}: a healthcheck command would need a shell or curl, which the image has not");
    }
}

/// `PGFLEET_*` names used in a text, each once.
fn pgfleet_vars(text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for (i, _) in text.match_indices("PGFLEET_") {
        let name: String = text[i..]
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        // `PGFLEET_*` in prose is not a variable.
        if !name.ends_with('_') {
            out.insert(name);
        }
    }
    out
}

#[test]
fn aws_template_passes_cfn_lint() {
    let template = repo_root().join(TEMPLATE);
    assert!(template.exists(), "{} is missing", template.display());
    let out = match Command::new("cfn-lint").arg(&template).output() {
        Ok(o) => o,
        Err(e) => panic!(
            "cfn-lint is required to check {TEMPLATE} but could not be run ({e}); install it with:\n  {CFN_LINT_INSTALL}"
        ),
    };
    assert!(
        out.status.success(),
        "cfn-lint found problems in {TEMPLATE} (exit {:?}):\n{}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn aws_template_has_scale_in_pieces_and_no_secrets() {
    let path = repo_root().join(TEMPLATE);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let doc: Value =
        serde_yaml::from_str(&text).unwrap_or_else(|e| panic!("{TEMPLATE} is not valid YAML: {e}"));
    let resources = doc
        .get("Resources")
        .and_then(Value::as_mapping)
        .expect("Resources");
    let types: Vec<&str> = resources
        .values()
        .filter_map(|r| r.get("Type").and_then(Value::as_str))
        .collect();
    for want in [
        "AWS::EC2::LaunchTemplate",
        "AWS::AutoScaling::AutoScalingGroup",
        "AWS::AutoScaling::ScalingPolicy",
        "AWS::IAM::Role",
        "AWS::IAM::InstanceProfile",
    ] {
        assert!(types.contains(&want), "{TEMPLATE} has no {want}");
    }
    // Target tracking on the coordinator's backlog-per-instance metric.
    assert!(text.contains("TargetTrackingScaling"), "no target tracking");
    assert!(text.contains("TaskBacklogPerInstance"), "no backlog metric");
    // The hook (inline in the group, so it holds from the first instance on) that keeps a
    // terminating instance in Terminating:Wait while its worker drains.
    assert!(
        text.contains("LifecycleHookSpecificationList")
            && text.contains("autoscaling:EC2_INSTANCE_TERMINATING"),
        "no termination lifecycle hook"
    );
    assert!(
        text.contains("complete-lifecycle-action"),
        "nothing completes the lifecycle action"
    );
    // No credential material in the template (user data included): secrets are fetched at
    // boot by name.
    for needle in [
        "AWS_SECRET_ACCESS_KEY",
        "AWS_ACCESS_KEY_ID",
        "PGPASSWORD=",
        "password=",
        "guest:guest",
    ] {
        assert!(
            !text.contains(needle),
            "{TEMPLATE} contains `{needle}`: secrets must come from Secrets Manager / SSM at boot"
        );
    }
    // The worker settings the unit sets are real worker options.
    let vars = pgfleet_vars(&text);
    assert!(!vars.is_empty(), "the template sets no PGFLEET_* variable");
    let worker_help = help("worker", &[]);
    let unknown: Vec<&String> = vars.iter().filter(|v| !has_env(&worker_help, v)).collect();
    assert!(
        unknown.is_empty(),
        "{TEMPLATE} uses {unknown:?}, which `worker --help` does not list"
    );
}

#[test]
fn invocation_checker_reports_unknown_names() {
    let argv = |s: &str| s.split_whitespace().map(str::to_string).collect::<Vec<_>>();
    assert!(check_invocation("ok", &argv("worker --concurrency 2"), &[]).is_empty());
    assert!(check_invocation(
        "ok",
        &argv("coordinator serve --metrics-addr=0.0.0.0:9180"),
        &["PGFLEET_STATE_URL".into()]
    )
    .is_empty());
    let p = check_invocation("bad", &argv("worker --concurency 2"), &[]);
    assert!(p.iter().any(|m| m.contains("--concurency")), "{p:?}");
    let p = check_invocation("bad", &argv("coordinator serv"), &[]);
    assert!(p.iter().any(|m| m.contains("`serv`")), "{p:?}");
    let p = check_invocation("bad", &argv("coordinator"), &[]);
    assert!(p.iter().any(|m| m.contains("needs a subcommand")), "{p:?}");
    // The state database is a serve option, not a worker one.
    let p = check_invocation("bad", &argv("worker"), &["PGFLEET_STATE_URL".into()]);
    assert!(p.iter().any(|m| m.contains("PGFLEET_STATE_URL")), "{p:?}");
    let p = check_invocation("bad", &argv("pgfleet-worker"), &[]);
    assert!(!p.is_empty());
}

#[test]
fn help_parsing_helpers() {
    let h = "Commands:\n  serve   Run\n  help  Print\n\nOptions:\n      --metrics-addr <A>  x [env: PGFLEET_METRICS_ADDR=] \n  -h, --help\n";
    assert_eq!(
        subcommands(h),
        BTreeSet::from(["serve".to_string(), "help".to_string()])
    );
    assert!(has_flag(h, "--metrics-addr"));
    assert!(!has_flag(h, "--metrics"));
    assert!(has_env(h, "PGFLEET_METRICS_ADDR"));
    assert!(!has_env(h, "PGFLEET_METRICS"));
    assert_eq!(
        pgfleet_vars("PGFLEET_A=1 PGFLEET_B_C=2 (PGFLEET_*)"),
        BTreeSet::from(["PGFLEET_A".to_string(), "PGFLEET_B_C".to_string()])
    );
}

/// The first string inside a YAML value (through tags such as `!Sub`).
fn first_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Tagged(t) => first_string(&t.value),
        Value::Mapping(m) => m.values().find_map(first_string),
        Value::Sequence(s) => s.iter().find_map(first_string),
        _ => None,
    }
}

/// The drain watcher script from the launch template's user data, with the CloudFormation
/// substitutions done as a stack named `pgfleet-test` in us-east-1 would get them.
fn drain_watch_script() -> String {
    let path = repo_root().join(TEMPLATE);
    let text = std::fs::read_to_string(&path).expect("read template");
    let doc: Value = serde_yaml::from_str(&text).expect("template YAML");
    let user_data = first_string(
        &doc["Resources"]["WorkerLaunchTemplate"]["Properties"]["LaunchTemplateData"]["UserData"],
    )
    .expect("user data");
    let start = "cat > /usr/local/sbin/pgfleet-drain-watch <<'SCRIPT'\n";
    let body =
        &user_data[user_data.find(start).expect("drain watcher in user data") + start.len()..];
    let body = &body[..body.find("\nSCRIPT\n").expect("end of the drain watcher")];
    body.replace("${AWS::Region}", "us-east-1")
        .replace("${AWS::StackName}", "pgfleet-test")
        .replace("${!", "${")
}

/// A loopback stand-in for the instance metadata service (IMDSv2: token required). The
/// lifecycle state turns `Terminated` on poll `terminate_on`; Spot notices start on `spot_on`.
fn fake_imds(terminate_on: usize, spot_on: usize) -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind fake IMDS");
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut lifecycle_polls, mut spot_polls) = (0usize, 0usize);
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut req = Vec::new();
            let mut buf = [0u8; 1024];
            while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                }
            }
            let req = String::from_utf8_lossy(&req).to_ascii_lowercase();
            let line = req.lines().next().unwrap_or_default().to_string();
            let has_token = req.contains("x-aws-ec2-metadata-token: tok");
            let (status, body) = if line.starts_with("put /latest/api/token") {
                ("200 OK", "tok".to_string())
            } else if !has_token {
                ("401 Unauthorized", String::new())
            } else if line.contains("/meta-data/instance-id ") {
                ("200 OK", "i-0abc".to_string())
            } else if line.contains("/autoscaling/target-lifecycle-state ") {
                lifecycle_polls += 1;
                let state = if lifecycle_polls >= terminate_on {
                    "Terminated"
                } else {
                    "InService"
                };
                ("200 OK", state.to_string())
            } else if line.contains("/spot/instance-action ") {
                spot_polls += 1;
                if spot_polls >= spot_on {
                    (
                        "200 OK",
                        r#"{"action":"terminate","time":"2026-11-21T08:00:00Z"}"#.to_string(),
                    )
                } else {
                    ("404 Not Found", String::new())
                }
            } else {
                ("404 Not Found", String::new())
            };
            let _ = write!(
                stream,
                "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    format!("http://{addr}")
}

/// Run the drain watcher against the fake IMDS with `systemctl`, `aws` and `logger` replaced by
/// recorders; returns the recorded calls in order.
fn run_drain_watch(imds: &str) -> Vec<String> {
    let dir = std::env::temp_dir().join(pgfleet_tests::unique("pgfleet-drain-"));
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).unwrap();
    let calls = dir.join("calls");
    for tool in ["systemctl", "aws", "logger"] {
        let p = bin_dir.join(tool);
        std::fs::write(&p, format!("#!/bin/sh\necho \"{tool} $*\" >> \"$CALLS\"\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let script = dir.join("pgfleet-drain-watch");
    std::fs::write(&script, drain_watch_script()).unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("timeout")
        .args(["60", "bash"])
        .arg(&script)
        .env("PATH", path)
        .env("IMDS_ENDPOINT", imds)
        .env("CALLS", &calls)
        .output()
        .expect("run bash");
    assert!(
        out.status.success(),
        "the drain watcher failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    let recorded = std::fs::read_to_string(&calls).unwrap_or_default();
    let _ = std::fs::remove_dir_all(&dir);
    recorded.lines().map(str::to_string).collect()
}

fn assert_drained_then_completed(calls: &[String], notice: &str) {
    let stop = calls
        .iter()
        .position(|c| c == "systemctl stop pgfleet-worker.service")
        .unwrap_or_else(|| panic!("the worker was not stopped: {calls:?}"));
    let complete = calls
        .iter()
        .position(|c| {
            c == "aws autoscaling complete-lifecycle-action --region us-east-1 \
                  --auto-scaling-group-name pgfleet-test-workers --lifecycle-hook-name drain \
                  --instance-id i-0abc --lifecycle-action-result CONTINUE"
        })
        .unwrap_or_else(|| panic!("the lifecycle action was not completed: {calls:?}"));
    assert!(stop < complete, "completed before draining: {calls:?}");
    assert!(
        calls[0].starts_with("logger") && calls[0].contains(notice),
        "no log line naming the notice: {calls:?}"
    );
}

#[test]
fn drain_watcher_stops_the_worker_then_completes_the_lifecycle_action() {
    // Scale-in: InService on the first poll, Terminated on the second.
    let calls = run_drain_watch(&fake_imds(2, usize::MAX));
    assert_drained_then_completed(&calls, "lifecycle: Terminated");
}

#[test]
fn drain_watcher_drains_on_a_spot_interruption_notice() {
    let calls = run_drain_watch(&fake_imds(usize::MAX, 1));
    assert_drained_then_completed(&calls, "\"action\":\"terminate\"");
}

/// Every file the README points to (links and `path` mentions of docs and fixtures) is in the
/// repository: a clone on its own has no `../shared`.
#[test]
fn readme_links_stay_inside_the_repository() {
    let root = repo_root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("read README.md");
    assert!(
        !readme.contains("../"),
        "README.md points outside the repository"
    );
    let mut checked = 0;
    for (i, _) in readme.match_indices("](") {
        let rest = &readme[i + 2..];
        let target = &rest[..rest.find(')').unwrap_or(0)];
        let path = target.split('#').next().unwrap_or_default();
        if path.is_empty() || path.contains("://") || path.starts_with("mailto:") {
            continue;
        }
        assert!(
            root.join(path).exists(),
            "README.md links to missing {path}"
        );
        checked += 1;
    }
    assert!(checked >= 3, "only {checked} links found");
}
