//! `pods/attach` (`kubectl attach POD [-c C]`): the container's output from now on, as the
//! kubelet attaches to a running container's stdout and stderr, until its run ends. podrun's
//! containers read no stdin (a pod's `stdin: true` is not run), so `-i` has nothing to feed
//! and a terminal was never allocated: kubectl says so itself from the pod's spec.

use std::io::{Seek, SeekFrom};
use std::sync::Arc;

use bytes::Bytes;
use serde_json::Value;
use tokio::sync::mpsc;

use super::channels::{Input, Output};
use crate::config::Config;
use crate::pod::read::Run;
use crate::state::PodRecord;

/// Follow `container`'s current run from its end; the Status when it ends.
pub async fn run(
    cfg: Arc<Config>,
    record: PodRecord,
    container: String,
    mut input: mpsc::Receiver<Input>,
    output: mpsc::Sender<Output>,
) -> Value {
    // Whatever the client sends is dropped; its going ends nothing (the run does).
    tokio::spawn(async move { while input.recv().await.is_some() {} });
    let followed = tokio::task::spawn_blocking(move || {
        let mut log = crate::pod::logs::open(&cfg, &record, &container, Run::Current)
            .map_err(|e| e.to_string())?;
        log.file.seek(SeekFrom::End(0)).map_err(|e| e.to_string())?;
        log.follow(&cfg, &mut |chunk| {
            output
                .blocking_send(Output::Stdout(Bytes::copy_from_slice(chunk)))
                .is_ok()
        });
        Ok::<(), String>(())
    })
    .await;
    match followed {
        Ok(Ok(())) => super::exec::success(),
        Ok(Err(text)) => super::exec::internal_error(&text),
        Err(e) => super::exec::internal_error(&e.to_string()),
    }
}
