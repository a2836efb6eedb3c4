//! The threads that run searches, at a lower scheduling priority than the rest of the
//! process: on cores shared with purchases, a burst of searches waits for the buy path
//! instead of taking turns with it. Searches still get every idle moment.

use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Arc, Mutex, PoisonError};

type Job = Box<dyn FnOnce() + Send>;

pub struct SearchThreads {
    jobs: Sender<Job>,
}

impl SearchThreads {
    /// `count` threads, named `search-N`, `niceness` nice levels below the caller (at 5
    /// a search thread weighs about a third of a normal one on contended cores).
    pub fn start(count: usize, niceness: u8) -> std::io::Result<Self> {
        let (jobs, queue) = channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..count.max(1) {
            let queue = queue.clone();
            std::thread::Builder::new()
                .name(format!("search-{n}"))
                .spawn(move || run(&queue, niceness))?;
        }
        Ok(Self { jobs })
    }

    /// Runs `work` on a search thread; `None` when it could not run (or panicked).
    pub async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Option<T> {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move || {
            let _ = reply.send(work());
        });
        self.jobs.send(job).ok()?;
        answer.await.ok()
    }
}

fn run(queue: &Mutex<Receiver<Job>>, niceness: u8) {
    lower_priority(niceness);
    loop {
        let job = match queue.lock().unwrap_or_else(PoisonError::into_inner).recv() {
            Ok(job) => job,
            // Every sender is gone: the index was dropped.
            Err(_) => return,
        };
        // A panicking search drops its reply (the caller hears None); the thread stays.
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
    }
}

/// Linux keeps a nice level per thread: this one's only.
fn lower_priority(niceness: u8) {
    if niceness == 0 {
        return;
    }
    let thread = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(thread)).unwrap_or(0);
    let nicer = (current + i32::from(niceness)).min(19);
    if let Err(error) = rustix::process::setpriority_process(Some(thread), nicer) {
        tracing::debug!(%error, "search thread keeps the normal priority");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own_niceness() -> i32 {
        rustix::process::getpriority_process(Some(rustix::thread::gettid())).unwrap_or(0)
    }

    #[tokio::test]
    async fn searches_run_nicer_than_the_caller_and_survive_a_panic() {
        let threads = SearchThreads::start(1, 5).unwrap();
        let caller = own_niceness();
        let theirs = threads.run(own_niceness).await.unwrap();
        assert_eq!(theirs, (caller + 5).min(19));
        assert_eq!(threads.run(|| -> u8 { panic!("a bad search") }).await, None);
        assert_eq!(threads.run(|| 7).await, Some(7));
    }
}
