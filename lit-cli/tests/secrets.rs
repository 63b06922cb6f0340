//! No secret is ever printed: every command (export, cp, inspect, verify, run, bench) is given a
//! store that fails to open or write, whose location or `--store-option` holds a secret — user
//! info, an Azure SAS `sig`, an AWS pre-signed `X-Amz-Signature`, option values — and neither
//! stdout nor stderr may show it. The store is an S3 server in this test process.

mod common;
use common::*;
use lit_store::testing::{S3TestServer, SECRET_KEY};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
    server: S3TestServer,
    cache: tempfile::TempDir,
    /// A small checkpoint and a local store made from it.
    ckpt: String,
    local: String,
}

fn env() -> Env {
    let dir = tempfile::tempdir().unwrap();
    let server = S3TestServer::start(dir.path().join("s3")).unwrap();
    server.create_bucket("models").unwrap();
    let ckpt = dir.path().join("net.safetensors");
    synthetic_checkpoint(&ckpt, 2, 4096);
    let local = dir.path().join("net.lit");
    let env = Env {
        ckpt: ckpt.to_str().unwrap().to_string(),
        local: local.to_str().unwrap().to_string(),
        dir,
        server,
        cache: tempfile::tempdir().unwrap(),
    };
    // A local store, and one in the bucket that writes to `TAKEN` collide with.
    for dst in [env.local.clone(), format!("s3://models/{TAKEN}")] {
        let out = env.lit(&strings(&["export", &env.ckpt, &dst]));
        assert!(out.status.success(), "{}", stderr(&out));
    }
    env
}

/// A store that exists in the bucket (so writing there fails) and one that does not (so reading
/// it fails); `PATH` in a location template stands for either.
const TAKEN: &str = "taken.lit";
const ABSENT: &str = "absent.lit";

impl Env {
    /// `lit args…` with the server's endpoint and credentials in the environment; fails the test
    /// if the server's own secret key is printed.
    fn lit(&self, args: &[String]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_lit"))
            .args(args)
            .envs(self.server.env())
            .env("LIT_CACHE_DIR", self.cache.path())
            .output()
            .expect("lit runs");
        for text in [stdout(&out), stderr(&out)] {
            assert!(!text.contains(SECRET_KEY), "a secret was printed:\n{text}");
        }
        out
    }
}

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

/// Every command, with `template` as the store read (`PATH` = [`ABSENT`]) or written (`PATH` =
/// [`TAKEN`]), and `extra` flags.
fn every_command(env: &Env, template: &str, extra: &[&str]) -> Vec<Vec<String>> {
    let (ckpt, local) = (&env.ckpt, &env.local);
    let read = template.replace("PATH", ABSENT);
    let write = template.replace("PATH", TAKEN);
    let (read, write) = (read.as_str(), write.as_str());
    let copy = env.dir.path().join("copy.lit");
    let copy = copy.to_str().unwrap();
    let fast = ["--retries", "0", "--deadline", "10"];
    let commands: [&[&str]; 7] = [
        &["export", ckpt, write],
        &["cp", read, copy],
        &["cp", local, write],
        &["inspect", read],
        &["verify", read],
        &[
            "run",
            "bert",
            read,
            "--budget",
            "60MiB",
            "A man is eating food.",
        ],
        &["bench", read, "--passes", "1"],
    ];
    commands
        .iter()
        .map(|c| {
            let mut args = strings(c);
            args.extend(strings(&fast));
            args.extend(strings(extra));
            args
        })
        .collect()
}

/// Runs each command and checks that it fails, that `secret` is printed nowhere, and that the
/// error still says something (`hint`, when given, names what failed).
fn assert_hidden(env: &Env, commands: Vec<Vec<String>>, secret: &str, hint: Option<&str>) {
    for args in commands {
        let out = env.lit(&args);
        let (so, se) = (stdout(&out), stderr(&out));
        assert!(!out.status.success(), "lit {args:?} succeeded:\n{so}{se}");
        for text in [&so, &se] {
            assert!(
                !text.contains(secret),
                "lit {args:?} printed the secret {secret:?}:\n{text}"
            );
        }
        assert!(!se.trim().is_empty(), "lit {args:?} failed silently");
        if let Some(hint) = hint {
            assert!(se.contains(hint), "lit {args:?}: {hint:?} not in:\n{se}");
        }
    }
}

#[test]
fn secrets_in_locations_are_never_printed() {
    let env = env();
    let endpoint = env.server.endpoint();
    let cases = [
        // user:password in the URL (refused, and not echoed).
        (
            "s3://AKIAEXAMPLE:userinfo-secret-1@models/PATH".to_string(),
            "userinfo-secret-1",
            Some("models/"),
        ),
        (
            format!("http://reader:userinfo-secret-2@{}/models/PATH", &endpoint[7..]),
            "userinfo-secret-2",
            Some("models/"),
        ),
        // An Azure SAS token: the signature is in the query.
        (
            "az://container/PATH?sv=2024-05-04&sr=c&sp=rl&sig=sas-sig-secret-3%3D".to_string(),
            "sas-sig-secret-3",
            Some("az://container/"),
        ),
        (
            format!("{endpoint}/models/PATH?sv=2024-05-04&sp=rl&sig=sas-sig-secret-4%3D"),
            "sas-sig-secret-4",
            Some("models/"),
        ),
        // An AWS pre-signed URL.
        (
            "s3://models/PATH?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20260101&X-Amz-Signature=amz-sig-secret-5".to_string(),
            "amz-sig-secret-5",
            Some("s3://models/"),
        ),
        (
            format!("{endpoint}/models/PATH?X-Amz-Expires=3600&X-Amz-Signature=amz-sig-secret-6#frag-secret-7"),
            "amz-sig-secret-6",
            Some("models/"),
        ),
    ];
    for (location, secret, hint) in cases {
        let commands = every_command(&env, &location, &[]);
        assert_hidden(&env, commands, secret, hint);
    }
    // The fragment of the last case too.
    let location = format!("{endpoint}/models/PATH?a=b#frag-secret-7");
    assert_hidden(
        &env,
        every_command(&env, &location, &[]),
        "frag-secret-7",
        None,
    );
}

#[test]
fn store_option_values_are_never_printed() {
    let env = env();
    let location = "s3://models/PATH";
    // A value the client cannot parse: the message names the key instead.
    assert_hidden(
        &env,
        every_command(
            &env,
            location,
            &["--store-option", "aws_allow_http=hunter2"],
        ),
        "hunter2",
        Some("aws_allow_http"),
    );
    // Credentials the server refuses.
    assert_hidden(
        &env,
        every_command(
            &env,
            location,
            &[
                "--store-option",
                "aws_access_key_id=akid-option-secret-8",
                "--store-option",
                "aws_secret_access_key=secret-option-secret-9",
            ],
        ),
        "option-secret",
        None,
    );
    // A mistyped option (`:` for `=`) is refused by the argument parser without echoing it.
    assert_hidden(
        &env,
        every_command(
            &env,
            location,
            &["--store-option", "aws_session_token:typo-secret-10"],
        ),
        "typo-secret-10",
        Some("--store-option"),
    );
    // An unknown key is named; its value is not shown.
    assert_hidden(
        &env,
        every_command(
            &env,
            location,
            &["--store-option", "aws_sesion_token=unknown-key-secret-11"],
        ),
        "unknown-key-secret-11",
        Some("aws_sesion_token"),
    );
}
