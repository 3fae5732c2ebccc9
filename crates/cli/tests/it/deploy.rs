//! The container image and the Kubernetes manifests: structure of the Dockerfile (no
//! Docker engine here), and the rendered kustomization validated against the Kubernetes
//! schemas plus picoclaw's own rules (deploy/kubernetes/validate.py).

use std::path::PathBuf;
use std::process::Command;

use crate::support;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Dockerfile instructions as (INSTRUCTION, arguments), continuation lines joined.
fn instructions(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if current.is_empty() && (trimmed.is_empty() || trimmed.starts_with('#')) {
            continue;
        }
        if let Some(stripped) = trimmed.strip_suffix('\\') {
            current.push_str(stripped);
            current.push(' ');
            continue;
        }
        current.push_str(trimmed);
        let (op, args) = current.split_once(' ').unwrap_or((&current, ""));
        out.push((op.to_ascii_uppercase(), args.trim().to_owned()));
        current.clear();
    }
    assert!(current.is_empty(), "dangling continuation line");
    out
}

#[test]
fn dockerfile_is_multi_stage_non_root_and_health_checked() {
    let text = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let all = instructions(&text);
    const KNOWN: &[&str] = &[
        "FROM",
        "RUN",
        "COPY",
        "ENV",
        "USER",
        "WORKDIR",
        "VOLUME",
        "EXPOSE",
        "HEALTHCHECK",
        "ENTRYPOINT",
        "CMD",
        "ARG",
        "LABEL",
    ];
    for (op, _) in &all {
        assert!(KNOWN.contains(&op.as_str()), "unknown instruction {op}");
    }
    let froms: Vec<_> = all.iter().enumerate().filter(|(_, (op, _))| op == "FROM").collect();
    assert!(froms.len() >= 2, "multi-stage");
    assert!(froms[0].1.1.starts_with("rust:1-bookworm AS builder"), "{:?}", froms[0]);
    let last_from = froms.last().unwrap().0;
    let runtime = &all[last_from..];
    assert!(
        runtime[0].1.starts_with("debian:bookworm-slim") || runtime[0].1.contains("distroless/cc"),
        "small runtime image: {}",
        runtime[0].1
    );
    let get = |op: &str| runtime.iter().filter(|(o, _)| o == op).map(|(_, a)| a.as_str()).collect::<Vec<_>>();
    assert!(get("COPY").iter().any(|a| a.contains("--from=builder")), "the binary comes from the builder");
    let user = get("USER");
    assert_eq!(user.len(), 1, "one USER in the runtime stage");
    let uid = user[0].split(':').next().unwrap();
    assert!(uid != "root" && uid != "0", "non-root user, got {uid}");
    assert!(get("ENV").iter().any(|a| a.contains("PICOCLAW_HOME=/data")));
    assert!(get("ENV").iter().any(|a| a.contains("PICOCLAW_GATEWAY_HOST=0.0.0.0")));
    assert_eq!(get("EXPOSE"), ["18790"]);
    let health = get("HEALTHCHECK");
    assert_eq!(health.len(), 1);
    assert!(health[0].contains(r#"CMD ["picoclaw", "gateway", "status"]"#), "{}", health[0]);
    assert!(get("ENTRYPOINT").iter().any(|a| a.contains("picoclaw")));
    // No secret is baked into the image (comments may explain how to pass one at run time).
    for (op, args) in &all {
        assert!(!(op == "ENV" || op == "ARG") || !args.contains("TOKEN"), "token in {op} {args}");
    }
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    for pattern in ["target/", ".security.yml", ".env"] {
        assert!(ignore.contains(pattern), ".dockerignore lacks {pattern}");
    }
}

/// The health check command's contract: exit 0 only when a gateway is ready.
#[test]
fn healthcheck_command_fails_without_a_ready_gateway() {
    let home = support::TestHome::new();
    let out = home.run(&["gateway", "status"]);
    assert_ne!(out.status.code(), Some(0));
    let gw = support::TestHome::onboarded();
    let _running = gw.spawn_gateway(&[]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if gw.run(&["gateway", "status"]).status.success() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "status never reported ready");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

#[test]
fn kubernetes_manifests_render_and_validate() {
    let have = Command::new(support::python())
        .args(["-c", "import kubernetes_validate, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(),
            "python3 with kubernetes-validate is required (scripts/test installs it)"
        );
        eprintln!("skipping: no python with kubernetes-validate (scripts/test makes target/pyenv)");
        return;
    }
    let out = Command::new(support::python())
        .arg(root().join("deploy/kubernetes/validate.py"))
        .args(["--picoclaw", support::bin()])
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Deployment/picoclaw") && text.contains("valid"), "{text}");
}

#[test]
fn kubernetes_validator_rejects_a_token_outside_the_secret() {
    // The validator must be able to fail: feed it a copy with a literal token in the
    // Deployment and a token in the ConfigMap's config.json.
    let have = Command::new(support::python())
        .args(["-c", "import kubernetes_validate, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none());
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for f in ["kustomization.yaml", "secret.yaml", "pvc.yaml", "service.yaml"] {
        std::fs::copy(root().join("deploy/kubernetes/base").join(f), dir.path().join(f)).unwrap();
    }
    std::fs::copy(root().join("deploy/kubernetes/validate.py"), dir.path().join("validate.py")).unwrap();
    let deployment = std::fs::read_to_string(root().join("deploy/kubernetes/base/deployment.yaml")).unwrap();
    let bad = deployment.replacen(
        "            - name: PICOCLAW_GATEWAY_TOKEN_FILE\n              value: /run/secrets/picoclaw/gateway-token\n",
        "            - name: PICOCLAW_GATEWAY_TOKEN\n              value: literal-token-in-the-manifest\n",
        1,
    );
    assert_ne!(bad, deployment, "the test edit applies");
    // And the Secret through a subPath mount, which never sees an update (kubernetes#50345).
    let bad2 = bad.replacen(
        "              mountPath: /run/secrets/picoclaw\n",
        "              mountPath: /run/secrets/picoclaw/pico-token\n              subPath: pico-token\n",
        1,
    );
    assert_ne!(bad2, bad, "the subPath edit applies");
    std::fs::write(dir.path().join("deployment.yaml"), bad2).unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"gateway": {"token": "in-configmap"}}"#).unwrap();
    let out = Command::new(support::python())
        .arg(dir.path().join("validate.py"))
        .args(["--pure", "--picoclaw", support::bin()])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("PICOCLAW_GATEWAY_TOKEN must come from the Secret"), "{err}");
    assert!(err.contains("holds a secret at gateway.token"), "{err}");
    assert!(err.contains("mounts the Secret with subPath"), "{err}");
    assert!(err.contains("Secret key gateway-token is not delivered"), "{err}");
}

fn have_kubernetes_validate() -> bool {
    let have = Command::new(support::python())
        .args(["-c", "import kubernetes_validate, yaml"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        assert!(
            std::env::var_os("PICOCLAW_REQUIRE_TOOLS").is_none(),
            "python3 with kubernetes-validate is required (scripts/test installs it)"
        );
        eprintln!("skipping: no python with kubernetes-validate (scripts/test makes target/pyenv)");
    }
    have
}

#[test]
fn the_replicas_overlay_renders_and_validates() {
    if !have_kubernetes_validate() {
        return;
    }
    let out = Command::new(support::python())
        .arg(root().join("deploy/kubernetes/validate.py"))
        .args(["--picoclaw", support::bin(), "--root"])
        .arg(root().join("deploy/kubernetes/overlays/replicas"))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{text}");
    assert!(text.contains("Secret/picoclaw-storage") && text.contains("valid"), "{text}");
    assert!(!text.contains("PersistentVolumeClaim"), "the overlay needs no ReadWriteOnce volume: {text}");
}

#[test]
fn the_replica_rules_reject_recreate_a_shared_volume_and_a_literal_storage_url() {
    if !have_kubernetes_validate() {
        return;
    }
    // A copy of the tree with the overlay's patch made wrong in three ways.
    let dir = tempfile::tempdir().unwrap();
    let k = dir.path().join("kubernetes");
    for sub in ["base", "overlays/replicas"] {
        std::fs::create_dir_all(k.join(sub)).unwrap();
        for entry in std::fs::read_dir(root().join("deploy/kubernetes").join(sub)).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), k.join(sub).join(entry.file_name())).unwrap();
        }
    }
    std::fs::copy(root().join("deploy/kubernetes/validate.py"), k.join("validate.py")).unwrap();
    let patch_path = k.join("overlays/replicas/deployment-patch.yaml");
    let patch = std::fs::read_to_string(&patch_path).unwrap();
    let bad = patch
        .replacen("    type: RollingUpdate\n    rollingUpdate:\n      maxUnavailable: 0\n      maxSurge: 1\n", "    type: Recreate\n", 1)
        .replacen(
            "              valueFrom:\n                secretKeyRef:\n                  name: picoclaw-storage\n                  key: url\n",
            "              value: postgres://picoclaw@postgres:5432/picoclaw\n",
            1,
        )
        .replacen("          persistentVolumeClaim: null\n          emptyDir: {}\n", "", 1);
    assert_eq!(bad.matches("Recreate").count(), 1, "the strategy edit applies");
    assert!(bad.contains("value: postgres://") && !bad.contains("emptyDir"), "the edits apply");
    std::fs::write(&patch_path, bad).unwrap();
    // Without the emptyDir the base's data volume (and its claim) stay: keep the claim.
    std::fs::write(
        k.join("overlays/replicas/kustomization.yaml"),
        std::fs::read_to_string(k.join("overlays/replicas/kustomization.yaml"))
            .unwrap()
            .replace("  - path: no-pvc.yaml\n", ""),
    )
    .unwrap();
    let out = Command::new(support::python())
        .arg(k.join("validate.py"))
        .args(["--pure", "--picoclaw", support::bin(), "--root"])
        .arg(k.join("overlays/replicas"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("need strategy RollingUpdate"), "{err}");
    assert!(err.contains("replicas share no ReadWriteOnce volume"), "{err}");
    assert!(err.contains("PICOCLAW_STORAGE_URL must come from a Secret"), "{err}");
}
