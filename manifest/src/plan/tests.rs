//! Resolving pods into plans.

mod resolving {
    use super::super::container::capabilities;
    use super::super::resolve::*;
    use super::super::*;
    use crate::error::Error;
    use crate::pod::Pod;
    use std::collections::BTreeMap;

    fn images(cfg: ImageConfig) -> BTreeMap<String, ImageInfo> {
        let info = ImageInfo {
            config: cfg,
            rootfs: "/pod1/images/abc".into(),
            passwd: Some("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".into()),
            group: Some("root:x:0:\napp:x:1000:\n".into()),
            id: "sha256:0123".into(),
        };
        BTreeMap::from([("oci:img".to_string(), info)])
    }

    fn plan(json: &str, cfg: ImageConfig) -> Result<Plan, Error> {
        resolve(&Pod::parse(json)?, &images(cfg))
    }

    #[test]
    fn resolves_a_pod() {
        let cfg = ImageConfig {
            entrypoint: vec!["/bin/sh".into()],
            cmd: vec!["-c".into(), "true".into()],
            env: vec!["PATH=/bin".into(), "GREETING=hi".into()],
            working_dir: "/srv".into(),
            user: "app".into(),
            stop_signal: "SIGQUIT".into(),
        };
        let p = plan(
            r#"{"metadata":{"name":"demo","annotations":{"pod1/restart-backoff-ms":"50"}},
                "spec":{"restartPolicy":"OnFailure",
                "containers":[{"name":"web","image":"oci:img",
                   "args":["-c","echo $(WHO) $$(WHO)"],
                   "env":[{"name":"WHO","value":"$(GREETING) world"}],
                   "securityContext":{"capabilities":{"add":["net_admin"],"drop":["CAP_KILL"]}}}]}}"#,
            cfg,
        )
        .unwrap();
        let c = &p.containers[0];
        assert_eq!(p.hostname, "demo");
        assert_eq!(p.restart_policy, RestartPolicy::OnFailure);
        assert_eq!(c.argv, ["/bin/sh", "-c", "echo $(GREETING) world $(WHO)"]);
        assert_eq!(
            c.env,
            [
                "PATH=/bin",
                "HOSTNAME=demo",
                "GREETING=hi",
                "WHO=$(GREETING) world"
            ]
        );
        assert_eq!(c.working_dir, "/srv");
        assert_eq!(
            c.user,
            User {
                uid: 1000,
                gid: 1000,
                additional_gids: vec![1000]
            }
        );
        assert_eq!(c.rootfs, "/pod1/images/abc");
        assert!(c.capabilities.contains(&"NET_ADMIN".to_string()));
        assert!(!c.capabilities.contains(&"KILL".to_string()));
        assert_eq!(p.backoff.initial_ms, 50);
        assert_eq!(p.termination_grace_period_seconds, 30);
        // The image's StopSignal, as no lifecycle.stopSignal replaces it.
        assert_eq!(c.stop_signal, 3);
    }

    #[test]
    fn an_init_container_with_restart_policy_always_is_a_sidecar() {
        let cfg = ImageConfig {
            cmd: vec!["true".into()],
            ..ImageConfig::default()
        };
        let pod = |init: &str, app: &str| {
            format!(
                r#"{{"metadata":{{"name":"p"}},"spec":{{"initContainers":[{{"name":"i","image":"oci:img"{init}}}],"containers":[{{"name":"a","image":"oci:img"{app}}}]}}}}"#
            )
        };
        let p = plan(&pod(r#","restartPolicy":"Always""#, ""), cfg.clone()).unwrap();
        assert!(p.init_containers[0].sidecar && !p.containers[0].sidecar);
        assert!(!plan(&pod("", ""), cfg.clone()).unwrap().init_containers[0].sidecar);
        let err = |init: &str, app: &str| plan(&pod(init, app), cfg.clone()).unwrap_err().to_string();
        assert!(err(r#","restartPolicy":"OnFailure""#, "")
            .contains("initContainers[0].restartPolicy: only \"Always\""));
        assert!(err("", r#","restartPolicy":"Always""#)
            .contains("containers[0].restartPolicy: may not be set for non-init containers"));
    }

    #[test]
    fn a_stop_signal_replaces_the_images() {
        let cfg = ImageConfig {
            stop_signal: "SIGQUIT".into(),
            cmd: vec!["true".into()],
            ..ImageConfig::default()
        };
        let pod = |lifecycle: &str, os: &str| {
            format!(
                r#"{{"metadata":{{"name":"p"}},"spec":{{{os}"containers":[{{"name":"a","image":"oci:img","lifecycle":{lifecycle}}}]}}}}"#
            )
        };
        let p = plan(
            &pod(r#"{"stopSignal":"SIGUSR1"}"#, r#""os":{"name":"linux"},"#),
            cfg.clone(),
        )
        .unwrap();
        assert_eq!(p.containers[0].stop_signal, 10);
        let err = |lifecycle: &str, os: &str| plan(&pod(lifecycle, os), cfg.clone()).unwrap_err().to_string();
        assert!(err(r#"{"stopSignal":"SIGUSR1"}"#, "").contains("spec.os.name must be set"));
        assert!(err(r#"{"stopSignal":"USR1"}"#, r#""os":{"name":"linux"},"#)
            .contains("not a signal Kubernetes supports"));
        assert!(err(r#"{"preStop":{"exec":{"command":[]}}}"#, "").contains("lifecycle.preStop.exec.command"));
        let bad = ImageConfig {
            stop_signal: "SIGNOPE".into(),
            ..cfg
        };
        assert!(plan(&pod("{}", ""), bad)
            .unwrap_err()
            .to_string()
            .contains("StopSignal \"SIGNOPE\""));
    }

    #[test]
    fn no_command_names_the_container() {
        let e = plan(
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"oci:img"}]}}"#,
            ImageConfig::default(),
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.containers[0]");
        assert!(e.message.contains("no command specified"), "{e}");
        assert!(e.message.contains("\"a\""), "{e}");
    }

    #[test]
    fn empty_lists_mean_absent() {
        let cfg = ImageConfig {
            entrypoint: vec!["/ep".into()],
            cmd: vec!["c".into()],
            ..Default::default()
        };
        let p = plan(
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"oci:img","command":[],"args":[]}]}}"#,
            cfg,
        )
        .unwrap();
        assert_eq!(p.containers[0].argv, ["/ep", "c"]);
    }

    #[test]
    fn run_as_overrides_image_user_and_pod_level_applies() {
        let cfg = ImageConfig {
            cmd: vec!["x".into()],
            user: "app".into(),
            ..Default::default()
        };
        let p = plan(
            r#"{"metadata":{"name":"p"},"spec":{"securityContext":{"runAsGroup":5},
               "containers":[{"name":"a","image":"oci:img","securityContext":{"runAsUser":7}}]}}"#,
            cfg,
        )
        .unwrap();
        assert_eq!(
            p.containers[0].user,
            User {
                uid: 7,
                gid: 5,
                additional_gids: vec![5]
            }
        );
    }

    #[test]
    fn capability_sets() {
        let caps = |add: &[&str], drop: &[&str]| {
            let c = crate::pod::Capabilities {
                add: add.iter().map(|s| s.to_string()).collect(),
                drop: drop.iter().map(|s| s.to_string()).collect(),
            };
            capabilities(false, Some(&c))
        };
        assert_eq!(capabilities(false, None).len(), DEFAULT_CAPABILITIES.len());
        assert_eq!(capabilities(true, None).len(), CAPABILITIES.len());
        assert_eq!(caps(&[], &["ALL"]), Vec::<String>::new());
        assert_eq!(caps(&["NET_ADMIN"], &["ALL"]), ["NET_ADMIN"]);
        assert_eq!(caps(&["ALL"], &["SYS_ADMIN"]).len(), CAPABILITIES.len() - 1);
    }

    #[test]
    fn plan_round_trips_through_json() {
        let cfg = ImageConfig {
            cmd: vec!["x".into()],
            ..Default::default()
        };
        let p = plan(
            r#"{"metadata":{"name":"p"},"spec":{"containers":[{"name":"a","image":"oci:img"}]}}"#,
            cfg,
        )
        .unwrap();
        let json = serde_json::to_string(&p).unwrap();
        assert!(
            json.starts_with(r#"{"pod":"p","hostname":"p","restartPolicy":"Always","initContainers":[]"#),
            "{json}"
        );
        let back: Plan = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
    }
}

mod qos {
    use super::super::resolve::*;
    use super::super::*;
    use crate::pod::Pod;

    fn class(containers: serde_json::Value) -> QosClass {
        let pod = serde_json::json!({"metadata": {"name": "q"}, "spec": {"containers": containers}});
        let pod = Pod::parse(&pod.to_string()).expect("pod");
        qos_class(pod.spec.init_containers.iter().chain(&pod.spec.containers))
    }

    #[test]
    fn qos_class_as_the_kubelet_computes_it() {
        let c = |resources: serde_json::Value| serde_json::json!({"name": "c", "image": "oci:x", "resources": resources});
        let both = serde_json::json!({"cpu": "500m", "memory": "64Mi"});
        assert_eq!(
            class(serde_json::json!([c(serde_json::json!({}))])),
            QosClass::BestEffort
        );
        // Limits alone: requests default to them.
        assert_eq!(
            class(serde_json::json!([c(serde_json::json!({"limits": both}))])),
            QosClass::Guaranteed
        );
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"limits": both, "requests": both})
            )])),
            QosClass::Guaranteed
        );
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"limits": both, "requests": {"memory": "32Mi"}})
            )])),
            QosClass::Burstable
        );
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"limits": {"memory": "64Mi"}})
            )])),
            QosClass::Burstable
        );
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"requests": {"cpu": "1"}})
            )])),
            QosClass::Burstable
        );
        // One container without limits makes the pod Burstable.
        let mut other = c(serde_json::json!({}));
        other["name"] = "d".into();
        assert_eq!(
            class(serde_json::json!([c(serde_json::json!({"limits": both})), other])),
            QosClass::Burstable
        );
        // Other resources do not count.
        assert_eq!(
            class(serde_json::json!([c(
                serde_json::json!({"requests": {"ephemeral-storage": "1Gi"}})
            )])),
            QosClass::BestEffort
        );
    }

    #[test]
    fn oom_score_adj_as_the_kubelet_sets_it() {
        let gib = 1 << 30;
        assert_eq!(oom_score_adj(QosClass::Guaranteed, Some(gib), gib), -997);
        assert_eq!(oom_score_adj(QosClass::BestEffort, None, gib), 1000);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(gib / 4), gib), 750);
        // No memory request: 1000 would equal BestEffort, so 999.
        assert_eq!(oom_score_adj(QosClass::Burstable, None, gib), 999);
        // A request at or over capacity: still above Guaranteed.
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(gib), gib), 3);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(4 * gib), gib), 3);
        assert_eq!(oom_score_adj(QosClass::Burstable, Some(gib), 0), 999);
    }
}

mod kubernetes_fields {
    use super::super::*;
    use crate::error::Error;
    use crate::pod::Pod;
    use serde_json::json;
    use std::collections::BTreeMap;

    /// Resolves container 0 of a pod whose spec is `spec` (containers get
    /// the image `oci:img`, User `user`, whose /etc/group lists `app` in
    /// `wheel` and `audio`).
    fn resolve_spec(spec: serde_json::Value, user: &str) -> Result<Plan, Error> {
        let info = ImageInfo {
            config: ImageConfig {
                cmd: vec!["x".into()],
                user: user.into(),
                ..Default::default()
            },
            rootfs: "/pod1/images/abc".into(),
            passwd: Some("root:x:0:0::/root:/bin/sh\napp:x:1000:1000::/home/app:/bin/sh\n".into()),
            group: Some("root:x:0:\napp:x:1000:\nwheel:x:10:root,app\naudio:x:29:app\n".into()),
            id: "sha256:0123".into(),
        };
        let images = BTreeMap::from([("oci:img".to_string(), info)]);
        let mut pod = Pod::parse(
            &json!({"metadata": {"name": "p", "namespace": "ns", "uid": "u1"}, "spec": spec}).to_string(),
        )?;
        pod.metadata.namespace.get_or_insert("default".into());
        resolve(&pod, &images)
    }

    fn one(container: serde_json::Value) -> serde_json::Value {
        let mut c = container;
        c["name"] = "c".into();
        c["image"] = "oci:img".into();
        json!({"containers": [c]})
    }

    #[test]
    fn groups_as_containerd_merges_them() {
        let p = resolve_spec(
            json!({"securityContext": {"fsGroup": 2000, "supplementalGroups": [3000, 29]},
            "containers": [{"name": "c", "image": "oci:img"}]}),
            "app",
        )
        .unwrap();
        // Primary gid, the image's groups listing the user, fsGroup, then
        // supplementalGroups without repeats.
        assert_eq!(p.containers[0].user.additional_gids, [1000, 10, 29, 2000, 3000]);
        let p = resolve_spec(
            json!({"securityContext": {"supplementalGroupsPolicy": "Strict", "supplementalGroups": [5]},
            "containers": [{"name": "c", "image": "oci:img"}]}),
            "1000",
        )
        .unwrap();
        assert_eq!(p.containers[0].user.additional_gids, [1000, 5]);
        // The fsGroup owns the emptyDirs; prepared volumes carry it in their files.
        let p = resolve_spec(
            json!({"securityContext": {"fsGroup": 7},
            "volumes": [{"name": "e", "emptyDir": {}}], "containers": [{"name": "c", "image": "oci:img"}]}),
            "",
        )
        .unwrap();
        assert_eq!(p.volumes[0].fs_group, Some(7));
    }

    #[test]
    fn run_as_non_root_with_the_kubelets_messages() {
        let refused = |spec: serde_json::Value, user: &str| {
            resolve_spec(spec, user).unwrap().containers[0].refused.clone()
        };
        let non_root = |sc: serde_json::Value| one(json!({"securityContext": sc}));
        let who = "(pod: \"p_ns(u1)\", container: c)";
        assert_eq!(
            refused(non_root(json!({"runAsNonRoot": true})), ""),
            Some(format!(
                "container has runAsNonRoot and image will run as root {who}"
            ))
        );
        assert_eq!(
            refused(non_root(json!({"runAsNonRoot": true})), "0:0"),
            Some(format!(
                "container has runAsNonRoot and image will run as root {who}"
            ))
        );
        assert_eq!(
            refused(non_root(json!({"runAsNonRoot": true})), "app"),
            Some(format!("container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root {who}"))
        );
        assert_eq!(
            refused(non_root(json!({"runAsNonRoot": true, "runAsUser": 0})), "1000"),
            Some(format!("container's runAsUser breaks non-root policy {who}"))
        );
        assert_eq!(refused(non_root(json!({"runAsNonRoot": true})), "1000"), None);
        assert_eq!(
            refused(non_root(json!({"runAsNonRoot": true, "runAsUser": 5})), "app"),
            None
        );
        assert_eq!(refused(non_root(json!({"runAsNonRoot": false})), ""), None);
        // The pod's setting applies to every container.
        let pod_level = json!({"securityContext": {"runAsNonRoot": true}, "containers": [{"name": "c", "image": "oci:img"}]});
        assert!(refused(pod_level, "").is_some());
    }

    #[test]
    fn no_new_privs_unless_escalation_is_allowed() {
        let nnp = |sc: serde_json::Value| {
            resolve_spec(one(json!({"securityContext": sc})), "")
                .unwrap()
                .containers[0]
                .no_new_privileges
        };
        assert!(nnp(json!({})));
        assert!(nnp(json!({"allowPrivilegeEscalation": false})));
        assert!(!nnp(json!({"allowPrivilegeEscalation": true})));
        assert!(!nnp(json!({"privileged": true})));
        let e = resolve_spec(
            one(json!({"securityContext": {"allowPrivilegeEscalation": false, "privileged": true}})),
            "",
        )
        .unwrap_err();
        assert!(e.path.ends_with("allowPrivilegeEscalation"), "{e}");
        // The API server refuses only the literal CAP_SYS_ADMIN with it.
        let sys_admin = json!({"allowPrivilegeEscalation": false, "capabilities": {"add": ["SYS_ADMIN"]}});
        assert!(nnp(sys_admin));
        let cap = json!({"allowPrivilegeEscalation": false, "capabilities": {"add": ["CAP_SYS_ADMIN"]}});
        assert!(resolve_spec(one(json!({"securityContext": cap})), "").is_err());
        let e = resolve_spec(one(json!({"securityContext": {"procMount": "Unmasked"}})), "").unwrap_err();
        assert!(e.message.contains("user namespaces"), "{e}");
    }

    #[test]
    fn sub_path_expr_expands_from_the_containers_env() {
        let spec = json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [{"name": "c", "image": "oci:img",
            "env": [{"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}],
            "volumeMounts": [{"name": "v", "mountPath": "/logs", "subPathExpr": "logs/$(POD)"},
                             {"name": "v", "mountPath": "/data", "subPath": "data", "readOnly": true}]}]});
        let p = resolve_spec(spec, "").unwrap();
        let m = &p.containers[0].volume_mounts;
        assert_eq!(m[0].sub_path.as_deref(), Some("logs/p"));
        assert_eq!((m[1].sub_path.as_deref(), m[1].read_only), (Some("data"), true));
        // An expansion must not climb out of the volume.
        let spec = json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [{"name": "c", "image": "oci:img",
            "env": [{"name": "UP", "value": ".."}],
            "volumeMounts": [{"name": "v", "mountPath": "/x", "subPathExpr": "$(UP)/etc"}]}]});
        let e = resolve_spec(spec, "").unwrap_err();
        assert_eq!(e.path, "spec.containers[0].volumeMounts[0].subPathExpr");
        // An undefined or empty variable keeps the container from being
        // created, as the kubelet refuses it.
        let spec = json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [{"name": "c", "image": "oci:img",
            "env": [{"name": "EMPTY", "value": ""}],
            "volumeMounts": [{"name": "v", "mountPath": "/x", "subPathExpr": "$(NOPE)/$(EMPTY)"}]}]});
        let p = resolve_spec(spec, "").unwrap();
        assert_eq!(
            p.containers[0].refused.as_deref(),
            Some("failed to prepare subPath for volumeMount \"v\" of container \"c\": missing value for EMPTY, NOPE")
        );
        let both = json!({"volumes": [{"name": "v", "emptyDir": {}}], "containers": [{"name": "c", "image": "oci:img",
            "volumeMounts": [{"name": "v", "mountPath": "/x", "subPath": "a", "subPathExpr": "b"}]}]});
        assert!(resolve_spec(both, "")
            .unwrap_err()
            .message
            .contains("mutually exclusive"));
    }

    #[test]
    fn managed_files_and_names() {
        let spec = json!({"hostname": "h", "subdomain": "s", "setHostnameAsFQDN": true, "containers": [
            {"name": "c", "image": "oci:img", "securityContext": {"readOnlyRootFilesystem": true},
             "terminationMessagePath": "/tmp/msg"},
            {"name": "d", "image": "oci:img", "volumeMounts": [{"name": "v", "mountPath": "/etc/hosts"}]}],
            "volumes": [{"name": "v", "emptyDir": {}}]});
        let p = resolve_spec(spec, "").unwrap();
        assert_eq!(p.hostname, "h.s.ns.svc.cluster.local");
        assert!(p.containers[0]
            .env
            .contains(&"HOSTNAME=h.s.ns.svc.cluster.local".to_string()));
        let files = |i: usize| -> Vec<(String, bool)> {
            p.containers[i]
                .files
                .iter()
                .map(|f| (f.target.clone(), f.read_only))
                .collect()
        };
        assert_eq!(
            files(0),
            [
                ("/etc/hosts".to_string(), false),
                ("/etc/hostname".to_string(), true),
                ("/etc/resolv.conf".to_string(), true),
                ("/tmp/msg".to_string(), false)
            ]
        );
        // A container mounting its own /etc/hosts keeps it.
        assert_eq!(files(1)[0].0, "/etc/hostname");
        assert_eq!(files(1)[2].0, TERMINATION_LOG);
        // The message file is the one bound at terminationMessagePath.
        assert_eq!(
            p.containers[0].termination_message_file,
            p.containers[0].files[3].source
        );
        assert_eq!(p.containers[0].termination_message_max, 4096);
        assert!(!p.containers[0].fallback_to_logs);
    }

    #[test]
    fn termination_messages_share_the_pods_12_kib() {
        use crate::plan::container::termination_message_max;
        assert_eq!(termination_message_max(1), 4096);
        assert_eq!(termination_message_max(3), 4096);
        assert_eq!(termination_message_max(4), 3072);
        assert_eq!(termination_message_max(12), 1024);
    }

    #[test]
    fn host_path_volumes_carry_what_run_and_the_init_need() {
        use crate::hostpath::HostPathType;
        let spec = json!({"securityContext": {"fsGroup": 7}, "volumes": [
            {"name": "src", "hostPath": {"path": "work", "type": "DirectoryOrCreate"}},
            {"name": "cfg", "hostPath": {"path": "/etc/app.conf", "type": "File"}},
            {"name": "any", "hostPath": {"path": "/srv"}}],
            "containers": [{"name": "c", "image": "oci:img", "volumeMounts": [
                {"name": "src", "mountPath": "/w"}, {"name": "cfg", "mountPath": "/a.conf", "readOnly": true},
                {"name": "any", "mountPath": "/s", "readOnly": true}]},
                {"name": "d", "image": "oci:img", "volumeMounts": [{"name": "any", "mountPath": "/s"}]}]});
        let p = resolve_spec(spec, "").unwrap();
        let h: Vec<_> = p.volumes.iter().map(|v| v.host_path.clone().unwrap()).collect();
        assert_eq!(
            (h[0].path.as_str(), h[0].kind, h[0].file, h[0].read_only),
            ("work", HostPathType::DirectoryOrCreate, false, false)
        );
        assert_eq!(
            (h[1].kind, h[1].file, h[1].read_only),
            (HostPathType::File, true, true)
        );
        // One writable mount among read-only ones: the share stays writable.
        assert_eq!(
            (h[2].kind, h[2].file, h[2].read_only),
            (HostPathType::Unset, false, false)
        );
        assert_eq!(
            [&h[0].tag, &h[1].tag, &h[2].tag],
            ["pod1-vol0", "pod1-vol1", "pod1-vol2"]
        );
        // fsGroup does not reach a host's files (the kubelet leaves hostPath alone).
        assert!(p
            .volumes
            .iter()
            .all(|v| v.fs_group.is_none() && v.source.is_none()));
        let bad = |t: &str| {
            resolve_spec(
                json!({"volumes": [{"name": "v", "hostPath": {"path": "/dev/kvm", "type": t}}],
                "containers": [{"name": "c", "image": "oci:img"}]}),
                "",
            )
            .unwrap_err()
        };
        let e = bad("CharDevice");
        assert_eq!(e.path, "spec.volumes[0].hostPath.type");
        assert!(e.message.contains("VM"), "{e}");
        assert!(bad("Dir").message.contains("DirectoryOrCreate"));
        let e = resolve_spec(
            json!({"volumes": [{"name": "v", "hostPath": {"path": ""}}],
            "containers": [{"name": "c", "image": "oci:img"}]}),
            "",
        )
        .unwrap_err();
        assert_eq!(e.path, "spec.volumes[0].hostPath.path");
    }
}
