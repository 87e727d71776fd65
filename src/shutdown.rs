//! The process's shutdown signal: SIGTERM (orchestrators) or Ctrl-C (terminals).

/// Resolves on the first SIGTERM or SIGINT.
pub async fn signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(stream) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops finhook");
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}

/// Resolves on the first SIGTERM or SIGINT, and from then on watches: a second signal, or
/// `deadline` passing without an orderly exit, ends the process at once (exit code 1).
pub async fn signal_with_deadline(deadline: std::time::Duration) {
    signal().await;
    tokio::spawn(async move {
        tokio::select! {
            _ = signal() => tracing::warn!("second signal: exiting at once"),
            _ = tokio::time::sleep(deadline) => {
                tracing::warn!(?deadline, "shutdown took too long: exiting at once")
            }
        }
        std::process::exit(1);
    });
}
