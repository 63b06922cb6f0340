//! The streamer's bookkeeping, free of threads and I/O so it can be tested alone: the planned
//! order, which layers are resident, fetching or ready, the bytes held against the budget, and
//! the passes.
//!
//! **Budget.** `held` counts every layer buffer the streamer is responsible for: resident layers,
//! fetches in flight, prefetched layers not yet used, and the non-resident layers of modules
//! still loaded. A byte is added before it is read and removed when its buffer is released, and
//! nothing is ever reserved past the budget, so `held ≤ budget` always.
//!
//! **Residency.** The resident set is the longest prefix of the planned order whose bytes, plus
//! room for the streamed layers after it, fit the budget. The room is twice the largest streamed
//! layer when prefetching and at least [`OVERLAP_MIN_STREAMED`] layers stream, so the next layer is
//! read while one computes; otherwise (or when the budget holds less than two) the largest
//! streamed layer: everything after the prefix can still be loaded one layer at a time. With a
//! budget ≥ the model every layer stays resident after the first pass.

use crate::executor::stats::PassStats;
use crate::load::Converted;
use lit_core::LayerData;
use std::collections::{HashMap, HashSet};

/// Where a layer's bytes are.
#[derive(Debug)]
pub(crate) enum Slot {
    /// Kept for the whole run, with the converted tensors its loads made (see
    /// [`Converted`]), which go when it stops being resident.
    Resident(LayerData, Converted),
    /// Being read (by a prefetch worker or by a loading thread).
    Fetching,
    /// Prefetched, waiting for its `load`.
    Ready(LayerData),
    /// The prefetch failed; the next `load` of the layer reports it.
    Failed(lit_core::Error),
}

/// What a `load` should do next for one layer.
#[derive(Debug)]
pub(crate) enum Acquire {
    /// The bytes; `owned` when they count against the budget until the module is dropped.
    Have { data: LayerData, owned: bool },
    /// Another thread is reading it (or room is being made): wait and retry.
    Wait,
    /// Bytes were reserved; read the layer on this thread.
    FetchHere,
    /// The budget is taken by live modules and the resident set; holds the bytes held.
    NoRoom(u64),
    /// A prefetch of the layer failed.
    Failed(lit_core::Error),
}

#[derive(Debug)]
pub(crate) struct State {
    /// Memory each layer takes while held (its bytes, plus converted copies; see `Streamer::new`).
    sizes: Vec<u64>,
    /// Bytes each layer reads from the source (for the statistics).
    read_sizes: Vec<u64>,
    /// The units of one layer share a group (see `units`): the prefetch depth counts groups,
    /// so a layer streamed in pieces is read ahead as one layer.
    groups: Vec<usize>,
    budget: u64,
    prefetch: usize,
    plan: Vec<usize>,
    /// Position in `plan` of the next layer expected.
    cursor: usize,
    resident_set: HashSet<usize>,
    /// Every layer the model uses, when the budget holds them all: they then all stay resident
    /// whatever order a pass loads them in (or whether it loads them: a table whose rows are
    /// taken may be loaded outside the observed order).
    everything: Option<Vec<usize>>,
    slots: HashMap<usize, Slot>,
    held: u64,
    peak: u64,
    /// Bytes a waiting `load` needs: prefetching pauses while non-zero.
    pub(crate) demand: u64,
    observed: Vec<usize>,
    seen: HashSet<usize>,
    pub(crate) passes: Vec<PassStats>,
    pub(crate) discarded: u64,
    pub(crate) shutdown: bool,
}

/// Streamed layers from which room for two of them is kept (one resident layer fewer): one more
/// layer read a pass buys the overlap of every streamed layer's compute with the next one's read.
/// On the 34.9 GB Llama, cold, a layer reads in ~350 ms and computes in ~67 ms: the overlap
/// repays the extra read from about 5 streamed layers; from the page cache (reads at memory
/// speed) from 1 or 2. 4 lies between; measuring both times in the first pass would be better.
pub(crate) const OVERLAP_MIN_STREAMED: usize = 4;

/// Length of the longest prefix of `plan` that can stay resident within `budget` (see the
/// module docs); `prefetch` is the prefetch depth (0: layers load one after another).
pub(crate) fn resident_prefix(
    plan: &[usize],
    sizes: &[u64],
    budget: u64,
    prefetch: usize,
) -> usize {
    let n = plan.len();
    // max_after[k] = largest layer in plan[k..].
    let mut max_after = vec![0u64; n + 1];
    for k in (0..n).rev() {
        max_after[k] = max_after[k + 1].max(sizes[plan[k]]);
    }
    // The longest prefix that fits with room for `streamed` of the largest layers after it.
    let longest = |streamed: u64| {
        let mut best = None;
        let mut sum = 0u64;
        for k in 0..=n {
            if sum.saturating_add(max_after[k].saturating_mul(streamed)) <= budget {
                best = Some(k);
            }
            if k < n {
                sum = sum.saturating_add(sizes[plan[k]]);
            }
        }
        best
    };
    let one = longest(1).unwrap_or(0);
    if prefetch == 0 || n - one < OVERLAP_MIN_STREAMED {
        return one;
    }
    longest(2).unwrap_or(one)
}

impl State {
    pub(crate) fn new(sizes: Vec<u64>, plan: Vec<usize>, budget: u64, prefetch: usize) -> Self {
        let mut s = State {
            read_sizes: sizes.clone(),
            groups: (0..sizes.len()).collect(),
            sizes,
            budget,
            prefetch,
            plan: Vec::new(),
            cursor: 0,
            resident_set: HashSet::new(),
            everything: None,
            slots: HashMap::new(),
            held: 0,
            peak: 0,
            demand: 0,
            observed: Vec::new(),
            seen: HashSet::new(),
            passes: vec![PassStats::default()],
            discarded: 0,
            shutdown: false,
        };
        let all: u64 = plan.iter().map(|&l| s.sizes[l]).sum();
        if all <= budget {
            s.everything = Some(plan.clone());
        }
        s.set_plan(plan);
        s
    }

    /// Counts `read` bytes per layer in the statistics instead of the held sizes.
    pub(crate) fn with_read_sizes(mut self, read: Vec<u64>) -> Self {
        self.read_sizes = read;
        self
    }

    /// Prefetches layers with the same group together (see [`State::groups`]).
    pub(crate) fn with_groups(mut self, groups: Vec<usize>) -> Self {
        self.groups = groups;
        self
    }

    pub(crate) fn size(&self, layer: usize) -> u64 {
        self.sizes[layer]
    }

    pub(crate) fn held(&self) -> u64 {
        self.held
    }

    pub(crate) fn peak(&self) -> u64 {
        self.peak
    }

    pub(crate) fn plan(&self) -> &[usize] {
        &self.plan
    }

    /// The converted-tensor cache of `layer` while it is resident.
    pub(crate) fn converted(&self, layer: usize) -> Option<Converted> {
        match self.slots.get(&layer) {
            Some(Slot::Resident(_, converted)) => Some(converted.clone()),
            _ => None,
        }
    }

    /// Bytes and count of layers resident now.
    pub(crate) fn resident(&self) -> (u64, usize) {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s, Slot::Resident(..)))
            .fold((0, 0), |(b, n), (&l, _)| (b + self.sizes[l], n + 1))
    }

    /// Uses `plan` from now on, recomputing the resident set and dropping residents outside it.
    fn set_plan(&mut self, plan: Vec<usize>) {
        self.resident_set = match &self.everything {
            Some(all) => all.iter().copied().collect(),
            None => {
                let k = resident_prefix(&plan, &self.sizes, self.budget, self.prefetch);
                plan[..k].iter().copied().collect()
            }
        };
        self.plan = plan;
        self.cursor = 0;
        let evict: Vec<usize> = self
            .slots
            .iter()
            .filter(|(l, s)| matches!(s, Slot::Resident(..)) && !self.resident_set.contains(l))
            .map(|(&l, _)| l)
            .collect();
        for l in evict {
            self.slots.remove(&l);
            self.held -= self.sizes[l];
        }
    }

    /// Ends the current pass: the order it observed becomes the plan.
    pub(crate) fn end_pass(&mut self) {
        let observed = std::mem::take(&mut self.observed);
        self.seen.clear();
        if !observed.is_empty() {
            if observed != self.plan {
                self.set_plan(observed);
            }
            self.passes.push(PassStats::default());
        }
    }

    /// Records that a `load` needs `layers` (ending the pass if one of them was already used in
    /// it) and moves the cursor past them.
    pub(crate) fn begin_load(&mut self, layers: &[usize]) {
        if layers.iter().any(|l| self.seen.contains(l)) {
            self.end_pass();
        }
        for &l in layers {
            if self.seen.insert(l) {
                self.observed.push(l);
            }
        }
        let pass = self.passes.last_mut().expect("one pass at least");
        pass.loads += 1;
        if let Some(p) = layers
            .iter()
            .filter_map(|l| self.plan.iter().position(|x| x == l))
            .max()
        {
            self.cursor = (p + 1) % self.plan.len();
        }
    }

    fn reserve(&mut self, bytes: u64) {
        self.held += bytes;
        self.peak = self.peak.max(self.held);
        debug_assert!(self.held <= self.budget, "budget overrun");
    }

    /// Returns `bytes` of owned layers (a dropped module, a failed read).
    pub(crate) fn release(&mut self, bytes: u64) {
        self.held -= bytes;
    }

    /// One step of acquiring `layer` for a `load` of `need` (which `layer` belongs to).
    pub(crate) fn acquire(&mut self, layer: usize, need: &[usize]) -> Acquire {
        let size = self.sizes[layer];
        match self.slots.remove(&layer) {
            Some(Slot::Resident(data, converted)) => {
                self.slots
                    .insert(layer, Slot::Resident(data.clone(), converted));
                self.passes.last_mut().expect("pass").resident_hits += 1;
                return Acquire::Have { data, owned: false };
            }
            Some(Slot::Ready(data)) => {
                self.count_read(self.read_sizes[layer]);
                return Acquire::Have {
                    owned: !self.keep_resident(layer, &data),
                    data,
                };
            }
            Some(Slot::Fetching) => {
                self.slots.insert(layer, Slot::Fetching);
                return Acquire::Wait;
            }
            Some(Slot::Failed(e)) => return Acquire::Failed(e),
            None => {}
        }
        if self.held + size > self.budget {
            // Make room: drop prefetched layers this load does not need, then wait for fetches
            // in flight, then give up resident layers from the end of the plan.
            let spare: Vec<usize> = self
                .slots
                .iter()
                .filter(|(l, s)| matches!(s, Slot::Ready(_)) && !need.contains(l))
                .map(|(&l, _)| l)
                .collect();
            for l in spare {
                self.slots.remove(&l);
                self.held -= self.sizes[l];
                self.discarded += self.read_sizes[l];
            }
        }
        if self.held + size > self.budget {
            if self.slots.values().any(|s| matches!(s, Slot::Fetching)) {
                self.demand = size;
                return Acquire::Wait;
            }
            let plan = self.plan.clone();
            for l in plan.iter().rev() {
                if self.held + size <= self.budget {
                    break;
                }
                if !need.contains(l) && matches!(self.slots.get(l), Some(Slot::Resident(..))) {
                    self.slots.remove(l);
                    self.resident_set.remove(l);
                    self.held -= self.sizes[*l];
                }
            }
        }
        if self.held + size > self.budget {
            self.demand = 0;
            return Acquire::NoRoom(self.held);
        }
        self.demand = 0;
        self.reserve(size);
        self.slots.insert(layer, Slot::Fetching);
        Acquire::FetchHere
    }

    /// A read of `layer` by the loading thread finished: returns whether the caller owns the
    /// bytes (`false` when they became resident). On error the reservation is returned.
    pub(crate) fn fetched_here(&mut self, layer: usize, data: Option<&LayerData>) -> bool {
        self.slots.remove(&layer);
        match data {
            Some(data) => {
                self.count_read(self.read_sizes[layer]);
                !self.keep_resident(layer, data)
            }
            None => {
                self.release(self.sizes[layer]);
                true
            }
        }
    }

    /// Counts tensors a load converted (see [`PassStats::tensors_converted`]).
    pub(crate) fn count_converted(&mut self, tensors: usize) {
        self.passes.last_mut().expect("pass").tensors_converted += tensors;
    }

    /// Counts bytes read by range outside any layer load (rows of a table).
    pub(crate) fn count_rows_read(&mut self, bytes: u64) {
        self.passes.last_mut().expect("pass").bytes_read += bytes;
    }

    /// `layer`'s bytes if they are resident.
    pub(crate) fn resident_data(&self, layer: usize) -> Option<LayerData> {
        match self.slots.get(&layer) {
            Some(Slot::Resident(data, _)) => Some(data.clone()),
            _ => None,
        }
    }

    /// `layer`'s prefetched bytes, taken out of the streamer (counted as read, their budget
    /// given back): the caller uses them once, and a later load reads the layer again.
    pub(crate) fn take_prefetched(&mut self, layer: usize) -> Option<LayerData> {
        match self.slots.remove(&layer) {
            Some(Slot::Ready(data)) => {
                self.count_read(self.read_sizes[layer]);
                self.release(self.sizes[layer]);
                Some(data)
            }
            Some(other) => {
                self.slots.insert(layer, other);
                None
            }
            None => None,
        }
    }

    /// Whether every layer of the plan stays resident (the budget holds the whole model).
    pub(crate) fn keeps_everything(&self) -> bool {
        self.everything.is_some()
    }

    fn count_read(&mut self, bytes: u64) {
        let pass = self.passes.last_mut().expect("pass");
        pass.bytes_read += bytes;
        pass.layers_read += 1;
    }

    /// Keeps `data` resident if `layer` is in the resident set; returns whether it did.
    fn keep_resident(&mut self, layer: usize, data: &LayerData) -> bool {
        if self.resident_set.contains(&layer) {
            self.slots
                .insert(layer, Slot::Resident(data.clone(), Converted::default()));
            true
        } else {
            false
        }
    }

    /// The next layer a prefetch worker should read (its bytes are reserved and it is marked
    /// fetching), if any: the first not read yet of the non-resident layers of the next
    /// `prefetch` groups of the plan (a group is usually one layer), when it fits the budget.
    /// Never skips ahead past a layer that does not fit.
    pub(crate) fn next_prefetch(&mut self) -> Option<usize> {
        if self.shutdown || self.demand > 0 || self.plan.is_empty() {
            return None;
        }
        let n = self.plan.len();
        let mut window = 0;
        let mut group = None;
        // Up to n - 1 positions: never the layer just loaded (still running).
        for step in 0..n.saturating_sub(1) {
            let layer = self.plan[(self.cursor + step) % n];
            if matches!(self.slots.get(&layer), Some(Slot::Resident(..))) {
                continue;
            }
            if group != Some(self.groups[layer]) {
                if window == self.prefetch {
                    break;
                }
                window += 1;
                group = Some(self.groups[layer]);
            }
            match self.slots.get(&layer) {
                Some(_) => continue,
                None => {
                    let size = self.sizes[layer];
                    if self.held + size > self.budget {
                        return None;
                    }
                    self.reserve(size);
                    self.slots.insert(layer, Slot::Fetching);
                    return Some(layer);
                }
            }
        }
        None
    }

    /// A prefetch of `layer` finished.
    pub(crate) fn prefetched(&mut self, layer: usize, result: lit_core::Result<LayerData>) {
        match result {
            Ok(data) => {
                self.slots.insert(layer, Slot::Ready(data));
            }
            Err(e) => {
                self.release(self.sizes[layer]);
                self.slots.insert(layer, Slot::Failed(e));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lit_core::LayerEntry;

    fn data(index: usize, len: usize) -> LayerData {
        LayerData {
            index,
            entry: LayerEntry {
                name: format!("l{index}"),
                key: String::new(),
                byte_len: len as u64,
                checksum: 0,
                tensors: vec![],
            },
            bytes: bytes::Bytes::from(vec![0u8; len]),
        }
    }

    #[test]
    fn resident_prefix_rule() {
        // Fewer than OVERLAP_MIN_STREAMED layers: room for one streamed layer, prefetch or not.
        let sizes = [10, 10, 30, 10];
        let plan = [0, 1, 2, 3];
        for prefetch in [0, 2] {
            let prefix = |budget| resident_prefix(&plan, &sizes, budget, prefetch);
            assert_eq!(prefix(30), 0);
            assert_eq!(prefix(49), 1);
            assert_eq!(prefix(50), 2);
            assert_eq!(prefix(59), 2);
            assert_eq!(prefix(60), 4);
            assert_eq!(prefix(1000), 4);
        }
        // Taking the big layer in leaves only 10-byte layers after it.
        let sizes = [10, 10, 30, 10, 10];
        let plan = [0, 1, 2, 3, 4];
        assert_eq!(resident_prefix(&plan, &sizes, 60, 0), 3);
        assert_eq!(resident_prefix(&plan, &sizes, 59, 0), 2);
        assert_eq!(resident_prefix(&[], &sizes, 0, 2), 0);
    }

    #[test]
    fn resident_prefix_keeps_room_to_overlap_many_streamed_layers() {
        let sizes = [10u64; 8];
        let plan: Vec<usize> = (0..8).collect();
        // 45 bytes: one streamed layer of room keeps 3 resident (5 streamed, enough to overlap),
        // so with prefetch two layers of room are kept: 2 resident.
        assert_eq!(resident_prefix(&plan, &sizes, 45, 0), 3);
        assert_eq!(resident_prefix(&plan, &sizes, 45, 2), 2);
        // 75 bytes: 6 resident leave 2 streamed, too few to repay a seventh layer's read.
        assert_eq!(resident_prefix(&plan, &sizes, 75, 2), 6);
        // 15 bytes hold one layer, not two: nothing resident either way, still runnable.
        assert_eq!(resident_prefix(&plan, &sizes, 15, 2), 0);
        // Room for two of the largest streamed layer, not of the largest layer overall.
        let sizes = [1u64, 1, 1, 1, 40, 10, 10, 10, 10, 10];
        let plan: Vec<usize> = (0..10).collect();
        // 64: one layer of room keeps 6 resident (54 + 10), leaving 4 streamed; two keep 5
        // (44 + 2 × 10), not 4 (4 + 2 × 40 would not fit).
        assert_eq!(resident_prefix(&plan, &sizes, 64, 0), 6);
        assert_eq!(resident_prefix(&plan, &sizes, 64, 2), 5);
        // 63: no prefix leaves room for two of the layers after it: the one-layer rule (5).
        assert_eq!(resident_prefix(&plan, &sizes, 63, 0), 5);
        assert_eq!(resident_prefix(&plan, &sizes, 63, 2), 5);
    }

    #[test]
    fn prefetch_window_budget_and_wraparound() {
        // Budget 25: layer 0 stays resident (10 + largest other 10 ≤ 25).
        let mut s = State::new(vec![10; 4], vec![0, 1, 2, 3], 25, 2);
        // Nothing loaded yet: layers 0 and 1; a third does not fit (20 + 10 > 25).
        assert_eq!(s.next_prefetch(), Some(0));
        assert_eq!(s.next_prefetch(), Some(1));
        assert_eq!(s.next_prefetch(), None);
        s.prefetched(0, Ok(data(0, 10)));
        s.prefetched(1, Ok(data(1, 10)));
        s.begin_load(&[0]);
        assert!(matches!(
            s.acquire(0, &[0]),
            Acquire::Have { owned: false, .. }
        ));
        s.begin_load(&[1]);
        assert!(matches!(
            s.acquire(1, &[1]),
            Acquire::Have { owned: true, .. }
        ));
        // 0 resident + 1 running: layer 2 does not fit until layer 1's module is dropped.
        assert_eq!(s.next_prefetch(), None);
        s.release(10);
        assert_eq!(s.next_prefetch(), Some(2));
        s.prefetched(2, Ok(data(2, 10)));
        s.begin_load(&[2]);
        assert!(matches!(
            s.acquire(2, &[2]),
            Acquire::Have { owned: true, .. }
        ));
        s.release(10);
        s.begin_load(&[3]);
        assert!(matches!(s.acquire(3, &[3]), Acquire::FetchHere));
        assert!(s.fetched_here(3, Some(&data(3, 10))));
        s.release(10);
        // After the last layer the window wraps into the next pass, skipping resident layer 0.
        assert_eq!(s.next_prefetch(), Some(1));
        assert!(s.held() <= 25 && s.peak() <= 25);
        assert_eq!(s.passes[0].bytes_read, 40);
        assert_eq!(s.resident(), (10, 1));
    }

    #[test]
    fn the_prefetch_depth_counts_groups() {
        // Units 1 and 2 are pieces of one layer (a tiny norm, then projections): depth 1 reads
        // both.
        // Budget 21: nothing resident (two 10-byte units of room leave none for a prefix).
        let sizes = vec![10, 1, 10, 10, 1, 10];
        let plan: Vec<usize> = (0..6).collect();
        for (groups, ahead) in [
            (vec![0, 1, 1, 3, 4, 5], vec![1, 2]),
            ((0..6).collect(), vec![1]),
        ] {
            let mut s = State::new(sizes.clone(), plan.clone(), 21, 1).with_groups(groups);
            s.begin_load(&[0]);
            assert!(matches!(s.acquire(0, &[0]), Acquire::FetchHere));
            assert!(s.fetched_here(0, Some(&data(0, 10))), "unit 0 streams");
            let got: Vec<usize> = std::iter::from_fn(|| s.next_prefetch()).collect();
            assert_eq!(got, ahead);
        }
    }

    #[test]
    fn passes_follow_the_observed_order() {
        let mut s = State::new(vec![10; 3], vec![0, 1, 2], 1000, 0);
        for l in [2, 0] {
            s.begin_load(&[l]);
            assert!(matches!(s.acquire(l, &[l]), Acquire::FetchHere));
            assert!(!s.fetched_here(l, Some(&data(l, 10))), "all fit: resident");
        }
        s.begin_load(&[2]);
        assert_eq!(s.plan(), [2, 0]);
        assert_eq!(s.passes.len(), 2);
        assert!(matches!(
            s.acquire(2, &[2]),
            Acquire::Have { owned: false, .. }
        ));
        assert_eq!(s.passes[0].bytes_read, 20);
        assert_eq!(s.passes[1].bytes_read, 0);
        assert_eq!(s.resident(), (20, 2));
    }

    #[test]
    fn no_room_while_modules_are_held() {
        let mut s = State::new(vec![10; 2], vec![0, 1], 10, 0);
        s.begin_load(&[0]);
        assert!(matches!(s.acquire(0, &[0]), Acquire::FetchHere));
        assert!(s.fetched_here(0, Some(&data(0, 10))));
        s.begin_load(&[1]);
        assert!(matches!(s.acquire(1, &[1]), Acquire::NoRoom(10)));
        s.release(10);
        assert!(matches!(s.acquire(1, &[1]), Acquire::FetchHere));
    }
}
