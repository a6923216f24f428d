//! The deployment examples in deploy/: the Kubernetes StatefulSet and the systemd unit are read
//! as Kubernetes and systemd would read them, their configuration is a valid novaml
//! configuration, and the command each runs starts a real worker on its shard.

use std::time::Duration;

use novaml_pipeline::config::Config;
use novaml_store::MetricsAt;
use yaml_rust2::{Yaml, YamlLoader};

use crate::env::{free_port, http_get, spawn_novaml, wait_for};

fn repo(path: &str) -> String {
    std::fs::read_to_string(novaml_testing::repo_root().join(path))
        .unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn str_of(y: &Yaml) -> &str {
    y.as_str().unwrap_or_else(|| panic!("not a string: {y:?}"))
}

/// Starts `novaml` with `args` (the configuration's TSDB and PostgreSQL replaced by real ones, the listen
/// address by a free loopback port) and `shard`, and waits until it answers /healthz.
fn runs(args: &[String], config: &str, shard: &str) {
    let vm = novaml_testing::services::Service::victoria_metrics();
    let pg = novaml_testing::services::Service::postgres();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config
        .replace("http://victoria-metrics:8428", &vm.url())
        .replace("postgres://novaml@postgres:5432/novaml", &pg.postgres_url())
        .replace("http://alertmanager:9093", "http://127.0.0.1:9");
    let config = regex::Regex::new(r#"path = "[^"]*""#)
        .expect("regex")
        .replace(&config, r#"path = "data/novaml.db""#)
        .into_owned();
    std::fs::write(dir.path().join("novaml.toml"), config).expect("config");
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let mut args: Vec<String> = args.to_vec();
    for (i, a) in args.clone().iter().enumerate() {
        if a == "--config" {
            args[i + 1] = "novaml.toml".into();
        }
        if a == "--listen" {
            args[i + 1] = listen.clone();
        }
    }
    args.extend(["--shard".into(), shard.into()]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let log = dir.path().join("serve.log");
    let mut p = spawn_novaml(&args, dir.path(), &log);
    wait_for("the worker's /healthz", Duration::from_secs(30), || {
        http_get(port, "/healthz").is_some_and(|(s, _)| s == 200)
    });
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains(&format!("shard={shard}")), "{text}");
    p.signal("TERM");
    assert!(p.wait_exit(Duration::from_secs(30)).success(), "{text}");
}

#[test]
fn the_kubernetes_statefulset_runs_one_shard_per_pod_on_the_configmap() {
    let docs = YamlLoader::load_from_str(&repo("deploy/kubernetes/novaml.yaml")).expect("YAML");
    let kinds: Vec<&str> = docs.iter().map(|d| str_of(&d["kind"])).collect();
    assert_eq!(kinds, ["ConfigMap", "Service", "StatefulSet"]);
    let (cm, svc, sts) = (&docs[0], &docs[1], &docs[2]);

    // The ConfigMap's file is a valid configuration: a remote store, detection on.
    let toml = str_of(&cm["data"]["novaml.toml"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("novaml.toml");
    std::fs::write(&path, toml).expect("write");
    let cfg = Config::load(Some(&path)).expect("the ConfigMap's novaml.toml is valid");
    let Ok(MetricsAt::Remote(remote)) = cfg.metrics_at() else {
        panic!("a remote store");
    };
    assert_eq!(remote.url, "http://victoria-metrics:8428");
    assert!(cfg.detect.enabled);
    assert!(
        matches!(cfg.state_at(), Ok(novaml_store::StateAt::Postgres(_))),
        "the fleet shares its state in PostgreSQL"
    );

    // The StatefulSet: one shard per replica, the config and data where the file says.
    let spec = &sts["spec"];
    let replicas = spec["replicas"].as_i64().expect("replicas");
    assert_eq!(
        str_of(&spec["serviceName"]),
        str_of(&svc["metadata"]["name"])
    );
    let labels = &spec["template"]["metadata"]["labels"];
    assert_eq!(spec["selector"]["matchLabels"], *labels);
    assert_eq!(svc["spec"]["selector"], *labels);
    let pod = &spec["template"]["spec"];
    let c = &pod["containers"][0];
    let env: Vec<(&str, &Yaml)> = c["env"]
        .as_vec()
        .expect("env")
        .iter()
        .map(|e| (str_of(&e["name"]), e))
        .collect();
    let index = env
        .iter()
        .find(|(n, _)| *n == "POD_INDEX")
        .expect("POD_INDEX")
        .1;
    assert_eq!(
        str_of(&index["valueFrom"]["fieldRef"]["fieldPath"]),
        "metadata.labels['apps.kubernetes.io/pod-index']"
    );
    let shard = str_of(
        &env.iter()
            .find(|(n, _)| *n == "NOVAML_SHARD")
            .expect("NOVAML_SHARD")
            .1["value"],
    );
    assert_eq!(
        shard,
        format!("$(POD_INDEX)/{replicas}"),
        "one shard per replica"
    );
    let args: Vec<String> = c["args"]
        .as_vec()
        .expect("args")
        .iter()
        .map(|a| str_of(a).to_owned())
        .collect();
    let config_at = &args[args.iter().position(|a| a == "--config").expect("--config") + 1];
    let mounts: Vec<(&str, &str)> = c["volumeMounts"]
        .as_vec()
        .expect("mounts")
        .iter()
        .map(|m| (str_of(&m["name"]), str_of(&m["mountPath"])))
        .collect();
    let mount = |name: &str| mounts.iter().find(|(n, _)| *n == name).expect(name).1;
    assert_eq!(*config_at, format!("{}/novaml.toml", mount("config")));
    assert!(
        cfg.store.path.starts_with(mount("data")),
        "{:?}",
        cfg.store.path
    );
    let listen = &args[args.iter().position(|a| a == "--listen").expect("--listen") + 1];
    let port = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse::<i64>().ok());
    assert_eq!(c["ports"][0]["containerPort"].as_i64(), port);
    assert_eq!(svc["spec"]["ports"][0]["port"].as_i64(), port);
    assert_eq!(str_of(&c["readinessProbe"]["httpGet"]["path"]), "/healthz");

    // The pod's command starts a worker (pod 1 of 3) against a real VictoriaMetrics.
    runs(&args, toml, &shard.replace("$(POD_INDEX)", "1"));
}

#[test]
fn the_systemd_unit_runs_shard_i_of_n() {
    let unit = repo("deploy/systemd/novaml@.service");
    let values = |key: &str| -> Vec<String> {
        unit.lines()
            .filter_map(|l| l.strip_prefix(&format!("{key}=")))
            .map(str::to_owned)
            .collect()
    };
    let env = values("Environment");
    assert!(env.contains(&"NOVAML_SHARD=%i/3".to_owned()), "{env:?}");
    let exec = values("ExecStart");
    assert_eq!(exec.len(), 1);
    // Instance 2: systemd replaces %i with the instance name.
    let words: Vec<String> = exec[0]
        .replace("%i", "2")
        .split_whitespace()
        .skip(1)
        .map(str::to_owned)
        .collect();
    assert_eq!(words[0], "serve");
    let listen = &words[words
        .iter()
        .position(|a| a == "--listen")
        .expect("--listen")
        + 1];
    assert_eq!(
        listen.parse::<std::net::SocketAddr>().map(|a| a.port()),
        Ok(8620)
    );
    let config = repo("deploy/kubernetes/novaml.yaml");
    let docs = YamlLoader::load_from_str(&config).expect("YAML");
    runs(&words, str_of(&docs[0]["data"]["novaml.toml"]), "2/3");
}
