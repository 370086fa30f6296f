//! `GET .../pods/NAME/log` (`kubectl logs`): a container run's log through the pod library's
//! `pod::logs`, as `podrun logs` prints it: `container` (required when the pod has more
//! than one), `previous`, `tailLines`, `limitBytes` (its last bytes... no: its first, as the
//! kubelet counts them), and `follow` (streamed until the run ends or the client goes).
//! podrun keeps a container's output without a time per line, so `timestamps`,
//! `sinceSeconds` and `sinceTime` are refused, naming the parameter, rather than ignored.

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::router::{Context, Reply, status, truthy};
use crate::pod::logs;
use crate::pod::read::Run;

pub fn serve(ctx: &Context, namespace: &str, name: &str, param: &dyn Fn(&str) -> String) -> Reply {
    for unsupported in ["timestamps", "sinceSeconds", "sinceTime"] {
        let value = param(unsupported);
        if !value.is_empty()
            && !matches!(
                value.as_str(),
                "0" | "f" | "F" | "false" | "FALSE" | "False"
            )
        {
            return status(
                400,
                "BadRequest",
                &format!(
                    "{unsupported}={value}: podrun keeps a container's output without a time per line"
                ),
                None,
            );
        }
    }
    let Ok(r) = crate::pod::read::get(&ctx.cfg, namespace, name) else {
        return status(
            404,
            "NotFound",
            &format!("pods \"{name}\" not found"),
            Some(serde_json::json!({"name": name, "kind": "pods"})),
        );
    };
    let container = match param("container") {
        c if !c.is_empty() => c,
        _ => {
            let apps: Vec<&str> = r.app_containers().map(|c| c.name.as_str()).collect();
            if apps.len() != 1 {
                let inits: Vec<&str> = r.init_containers().map(|c| c.name.as_str()).collect();
                let mut message = format!(
                    "a container name must be specified for pod {name}, choose one of: [{}]",
                    apps.join(" ")
                );
                if !inits.is_empty() {
                    message.push_str(&format!(
                        " or one of the init containers: [{}]",
                        inits.join(" ")
                    ));
                }
                return status(400, "BadRequest", &message, None);
            }
            apps[0].to_owned()
        }
    };
    let which = if truthy(&param("previous")) {
        Run::Previous
    } else {
        Run::Current
    };
    let mut log = match logs::open(&ctx.cfg, &r, &container, which) {
        Ok(l) => l,
        Err(e) => return status(400, "BadRequest", &e.to_string(), None),
    };
    let text = match log.read_all() {
        Ok(t) => t,
        Err(e) => return status(500, "InternalError", &e.to_string(), None),
    };
    let tail_lines = param("tailLines").parse::<i64>().ok();
    let limit = param("limitBytes").parse::<usize>().ok().filter(|n| *n > 0);
    let mut first = logs::tail(&text, tail_lines).to_vec();
    if let Some(limit) = limit {
        first.truncate(limit);
    }
    if !truthy(&param("follow")) || which == Run::Previous {
        let mut reply = Reply::new(200, Value::Null);
        reply.raw = Some(("text/plain", first));
        return reply;
    }
    let (tx, rx) = mpsc::channel(16);
    let cfg = ctx.cfg.clone();
    let spawned = std::thread::Builder::new()
        .name("log".into())
        .spawn(move || {
            let mut sent = first.len();
            if tx.blocking_send(Bytes::from(first)).is_err() {
                return;
            }
            log.follow(&cfg, &mut |chunk| {
                if chunk.is_empty() {
                    return !tx.is_closed();
                }
                let chunk = match limit {
                    Some(l) if sent >= l => return false,
                    Some(l) => &chunk[..chunk.len().min(l - sent)],
                    None => chunk,
                };
                sent += chunk.len();
                tx.blocking_send(Bytes::copy_from_slice(chunk)).is_ok()
            });
        });
    if let Err(e) = spawned {
        return status(500, "InternalError", &format!("log thread: {e}"), None);
    }
    let mut reply = Reply::new(200, Value::Null);
    reply.stream = Some(rx);
    reply
}
