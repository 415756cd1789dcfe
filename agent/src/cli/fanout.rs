//! A pipeline's items on several threads: each takes the next item, and the calling thread
//! gets the results as they finish (to write them, count them, show progress).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc;

use anyhow::Result;

/// Runs `work` on every item with `n` threads (inline when `n` is 1), handing each result to
/// `done` with the item's index, in the order they finish. An error from `done` stops the
/// threads from taking new items and is returned once the items in flight are done.
pub fn each<T: Sync, R: Send>(
    n: usize,
    items: &[T],
    work: impl Fn(&T) -> R + Sync,
    mut done: impl FnMut(usize, R) -> Result<()>,
) -> Result<()> {
    if n <= 1 || items.len() <= 1 {
        for (i, t) in items.iter().enumerate() {
            done(i, work(t))?;
        }
        return Ok(());
    }
    let next = AtomicUsize::new(0);
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..n.min(items.len()) {
            let (tx, next, stop, work) = (tx.clone(), &next, &stop, &work);
            s.spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(item) = items.get(i) else { break };
                    if tx.send((i, work(item))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(tx);
        let mut result = Ok(());
        for (i, r) in rx {
            if result.is_ok() {
                if let Err(e) = done(i, r) {
                    stop.store(true, Ordering::Relaxed);
                    result = Err(e);
                }
            }
        }
        result
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_item_is_done_once_and_an_error_stops_the_rest() {
        let items: Vec<u32> = (0..50).collect();
        let mut seen = [0; 50];
        each(
            4,
            &items,
            |x| x * 2,
            |i, r| {
                assert_eq!(r, items[i] * 2);
                seen[i] += 1;
                Ok(())
            },
        )
        .unwrap();
        assert!(seen.iter().all(|&c| c == 1));
        let mut count = 0;
        let e = each(
            3,
            &items,
            |x| *x,
            |_, r| {
                count += 1;
                if r == 5 {
                    anyhow::bail!("five")
                }
                Ok(())
            },
        );
        assert!(e.is_err() && count < 50, "{count}");
    }
}
