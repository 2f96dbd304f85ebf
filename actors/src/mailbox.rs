//! The priority mailbox of a channel: realtime before bulk, yet bulk is never starved.
//!
//! Rule: while both lanes have messages waiting, every [`REALTIME_BURST`] realtime messages
//! are followed by one bulk message. So realtime traffic gets at least 90% of a channel's
//! send slots under contention, and a bulk message waits at most [`REALTIME_BURST`] slots
//! behind realtime traffic once it reaches the head of its lane. Both operations are O(1).
use std::collections::VecDeque;

use crate::message::Lane;

/// How many realtime messages may go in a row while bulk messages wait.
pub const REALTIME_BURST: u32 = 9;

/// Two FIFO lanes and the starvation guard between them.
#[derive(Debug)]
pub struct PriorityMailbox<T> {
    realtime: VecDeque<T>,
    bulk: VecDeque<T>,
    /// Realtime messages taken in a row while bulk was waiting.
    realtime_streak: u32,
}

impl<T> Default for PriorityMailbox<T> {
    fn default() -> Self {
        PriorityMailbox {
            realtime: VecDeque::new(),
            bulk: VecDeque::new(),
            realtime_streak: 0,
        }
    }
}

impl<T> PriorityMailbox<T> {
    /// Adds `item` at the back of `lane`.
    pub fn push(&mut self, lane: Lane, item: T) {
        self.lane_mut(lane).push_back(item);
    }

    /// Puts `item` back at the front of `lane` (a send to retry keeps its place).
    pub fn push_front(&mut self, lane: Lane, item: T) {
        self.lane_mut(lane).push_front(item);
    }

    /// The lane the next [`pop`](Self::pop) takes from, if any message waits.
    pub fn next_lane(&self) -> Option<Lane> {
        match (self.realtime.is_empty(), self.bulk.is_empty()) {
            (true, true) => None,
            (false, true) => Some(Lane::Realtime),
            (true, false) => Some(Lane::Bulk),
            (false, false) if self.realtime_streak >= REALTIME_BURST => Some(Lane::Bulk),
            (false, false) => Some(Lane::Realtime),
        }
    }

    /// The message [`pop`](Self::pop) would take, left in place.
    pub fn peek(&self) -> Option<&T> {
        match self.next_lane()? {
            Lane::Realtime => self.realtime.front(),
            Lane::Bulk => self.bulk.front(),
        }
    }

    /// Takes the next message by the rule above.
    pub fn pop(&mut self) -> Option<T> {
        let lane = self.next_lane()?;
        let bulk_waiting = !self.bulk.is_empty();
        match lane {
            Lane::Realtime if bulk_waiting => self.realtime_streak += 1,
            _ => self.realtime_streak = 0,
        }
        self.lane_mut(lane).pop_front()
    }

    /// Messages waiting in `lane`.
    pub fn len(&self, lane: Lane) -> usize {
        match lane {
            Lane::Realtime => self.realtime.len(),
            Lane::Bulk => self.bulk.len(),
        }
    }

    /// Whether no message waits.
    pub fn is_empty(&self) -> bool {
        self.realtime.is_empty() && self.bulk.is_empty()
    }

    /// Messages waiting in both lanes.
    pub fn total(&self) -> usize {
        self.realtime.len() + self.bulk.len()
    }

    /// Removes every waiting message.
    pub fn drain(&mut self) -> impl Iterator<Item = T> + '_ {
        self.realtime_streak = 0;
        self.realtime.drain(..).chain(self.bulk.drain(..))
    }

    fn lane_mut(&mut self, lane: Lane) -> &mut VecDeque<T> {
        match lane {
            Lane::Realtime => &mut self.realtime,
            Lane::Bulk => &mut self.bulk,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A realtime message overtakes every waiting bulk message.
    #[test]
    fn realtime_goes_before_waiting_bulk() {
        let mut mb = PriorityMailbox::default();
        for i in 0..5 {
            mb.push(Lane::Bulk, format!("b{i}"));
        }
        mb.push(Lane::Realtime, "r0".to_string());
        assert_eq!(mb.pop().as_deref(), Some("r0"));
        assert_eq!(mb.pop().as_deref(), Some("b0"));
    }

    /// Under a flood of realtime traffic, bulk still gets one slot in ten.
    #[test]
    fn bulk_is_never_starved() {
        let mut mb = PriorityMailbox::default();
        mb.push(Lane::Bulk, "bulk".to_string());
        for i in 0..100 {
            mb.push(Lane::Realtime, format!("r{i}"));
        }
        let position = std::iter::from_fn(|| mb.pop())
            .position(|m| m == "bulk")
            .unwrap();
        assert_eq!(position, REALTIME_BURST as usize);
    }

    /// Each lane is first in, first out, and a retried message keeps its place.
    #[test]
    fn lanes_are_fifo_and_push_front_requeues_first() {
        let mut mb = PriorityMailbox::default();
        mb.push(Lane::Bulk, 1);
        mb.push(Lane::Bulk, 2);
        assert_eq!(mb.peek(), Some(&1));
        let first = mb.pop().unwrap();
        mb.push_front(Lane::Bulk, first);
        assert_eq!(mb.len(Lane::Bulk), 2);
        assert_eq!(std::iter::from_fn(|| mb.pop()).collect::<Vec<_>>(), [1, 2]);
        assert!(mb.is_empty());
    }
}
