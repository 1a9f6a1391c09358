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
