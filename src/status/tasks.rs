//! Which of the daemon's tasks ended before shutdown. Every long-running task (the writer thread,
//! collectors, forwarders, the current feed, alerts, location, the web server) runs until the
//! shutdown token is cancelled; one that ends earlier (a panic, or a return nobody planned) leaves
//! its part frozen while everything else looks fine. Each is watched here, and a death before
//! shutdown is logged and listed: `/healthz` answers 503 naming it, `/api/status` `tasks_died`.

use crate::cell::StatusCell;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::sync::Arc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// A task that ended before shutdown.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadTask {
    pub task: String,
    pub why: String,
    pub at: chrono::DateTime<chrono::Utc>,
}

/// The daemon's task registry: spawns or watches tasks and lists those that died.
#[derive(Clone)]
pub struct Tasks {
    tracker: TaskTracker,
    shutdown: CancellationToken,
    died: Arc<StatusCell<Vec<DeadTask>>>,
}

impl Tasks {
    pub fn new(tracker: TaskTracker, shutdown: CancellationToken) -> Tasks {
        Tasks { tracker, shutdown, died: Arc::default() }
    }

    /// Spawns `task` on the tracker under `name`; its end before shutdown is a death. Returns
    /// the watcher, which ends once the death (if any) is recorded.
    pub fn spawn(&self, name: impl Into<String>, task: impl Future<Output = ()> + Send + 'static) -> JoinHandle<()> {
        self.spawn_fallible(name, async move {
            task.await;
            Ok(())
        })
    }

    /// `spawn` for a task that can fail: its error is the reason given.
    pub fn spawn_fallible(
        &self,
        name: impl Into<String>,
        task: impl Future<Output = anyhow::Result<()>> + Send + 'static,
    ) -> JoinHandle<()> {
        let handle = self.tracker.spawn(task);
        let name = name.into();
        self.watch(name.clone(), async move {
            match handle.await {
                Ok(Ok(())) => "it returned".to_owned(),
                Ok(Err(e)) => {
                    // Logged even at shutdown (a web server that fails while draining).
                    tracing::error!(task = %name, error = %format!("{e:#}"), "task failed");
                    format!("it failed: {e:#}")
                }
                Err(e) if e.is_panic() => format!("it panicked: {}", panic_message(e.into_panic().as_ref())),
                Err(_) => "it was cancelled".to_owned(),
            }
        })
    }

    /// Watches a task started elsewhere: `ended` resolves, with why, when it has ended.
    /// The watcher is not on the tracker (it must not hold shutdown up).
    pub fn watch(
        &self,
        name: impl Into<String>,
        ended: impl Future<Output = String> + Send + 'static,
    ) -> JoinHandle<()> {
        let tasks = self.clone();
        let name = name.into();
        tokio::spawn(async move {
            let why = ended.await;
            tasks.died(&name, &why);
        })
    }

    /// Records `task`'s death unless the daemon is shutting down (then every task ends).
    pub fn died(&self, task: &str, why: &str) {
        if self.shutdown.is_cancelled() {
            return;
        }
        tracing::error!(task, why, "a task of the daemon ended before shutdown; /healthz reports it");
        let dead = DeadTask { task: task.to_owned(), why: why.to_owned(), at: chrono::Utc::now() };
        self.died.update(|d| d.push(dead));
    }

    /// The tasks that died before shutdown, in order.
    pub fn dead(&self) -> Vec<DeadTask> {
        self.died.snapshot()
    }
}

/// A panic's message, when it has one.
pub fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "no message".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    async fn wait_for_dead(tasks: &Tasks, n: usize) -> Vec<DeadTask> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let dead = tasks.dead();
            if dead.len() >= n || tokio::time::Instant::now() > deadline {
                return dead;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn a_task_that_panics_returns_or_fails_before_shutdown_is_named_with_why() {
        let tasks = Tasks::new(TaskTracker::new(), CancellationToken::new());
        tasks.spawn("collector a", async { panic!("parser bug") });
        let dead = wait_for_dead(&tasks, 1).await;
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].task, "collector a");
        assert!(dead[0].why.contains("panicked: parser bug"), "{dead:?}");

        tasks.spawn("collector b", async {});
        tasks.spawn_fallible("web", async { Err(anyhow::anyhow!("listener closed")) });
        let dead = wait_for_dead(&tasks, 3).await;
        let why = |name: &str| dead.iter().find(|d| d.task == name).map(|d| d.why.clone());
        assert_eq!(why("collector b").as_deref(), Some("it returned"));
        assert_eq!(why("web").as_deref(), Some("it failed: listener closed"));
    }

    #[tokio::test]
    async fn tasks_ending_at_shutdown_are_not_deaths() {
        let shutdown = CancellationToken::new();
        let tracker = TaskTracker::new();
        let tasks = Tasks::new(tracker.clone(), shutdown.clone());
        let cancel = shutdown.clone();
        let alerts = tasks.spawn("alerts", async move { cancel.cancelled().await });
        shutdown.cancel();
        tracker.close();
        tracker.wait().await;
        alerts.await.unwrap();
        // And a task that ends after shutdown.
        tasks.spawn("late", async {}).await.unwrap();
        assert!(tasks.dead().is_empty(), "{:?}", tasks.dead());
    }
}
