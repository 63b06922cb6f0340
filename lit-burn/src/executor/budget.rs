//! The memory budget: a number of bytes, everything, or sized from the memory available (the
//! default), so that a model larger than the machine runs without arithmetic from the user.

use crate::memory::{self, Available};
use std::fmt;

/// Bytes the process needs beside the weights it holds (code, Burn, tokenizer, activations of
/// small models): kept out of an automatic budget.
pub const PROCESS_RESERVE: u64 = 64 << 20;

/// Share of the memory available an automatic budget takes, after [`PROCESS_RESERVE`] and one
/// largest layer's worth for the transient copies a forward pass makes outside the budget (a
/// matmul's contiguous operand, a tied head's logits); the rest is left for activations, the KV
/// cache, the page cache and the other programs.
pub const AUTO_SHARE: (u64, u64) = (3, 4);

/// How much memory of layer buffers a [`Streamer`](crate::Streamer) may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Budget {
    /// At most this many bytes.
    Bytes(u64),
    /// No limit: after the first pass every layer stays resident.
    All,
    /// Sized when the streamer is built: the model when it fits in [`AUTO_SHARE`] of the memory
    /// available to the process (see [`crate::memory`]), otherwise that share, and never less
    /// than the layers held through a pass plus room for the largest other layer twice (the
    /// running one and one fetched ahead) unless the memory is shorter than that, and then never
    /// less than the least budget the model runs in (with a warning).
    #[default]
    Auto,
}

impl From<u64> for Budget {
    fn from(bytes: u64) -> Self {
        Budget::Bytes(bytes)
    }
}

/// The budget a streamer chose, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BudgetChoice {
    /// What was asked for.
    pub asked: Budget,
    /// The budget in bytes (`u64::MAX` for [`Budget::All`]).
    pub bytes: u64,
    /// Bytes the model's layers take held all at once.
    pub model_bytes: u64,
    /// The memory available when the streamer was built, if known.
    pub available: Option<Available>,
    /// Set when the machine may not hold the budget: a budget above the memory available, or a
    /// model whose largest layer exceeds it.
    pub warning: Option<String>,
}

impl BudgetChoice {
    /// Resolves `asked` for a model whose layers take `model_bytes` held together, that runs in
    /// `least` bytes and streams with a layer fetched ahead in `floor` (its least budget plus
    /// its largest streamed layer), and whose largest layer takes `largest`, with `available`
    /// memory.
    pub(crate) fn resolve(
        asked: Budget,
        model_bytes: u64,
        least: u64,
        floor: u64,
        largest: u64,
        available: Option<Available>,
    ) -> Self {
        let usable = available.map(|a| {
            a.bytes
                .saturating_sub(PROCESS_RESERVE)
                .saturating_sub(largest)
                / AUTO_SHARE.1
                * AUTO_SHARE.0
        });
        let floor = floor.min(model_bytes);
        let (bytes, warning) = match asked {
            Budget::Bytes(b) => (
                b,
                match available {
                    Some(a) if b.min(model_bytes) > a.bytes => Some(format!(
                        "a budget of {} MiB for {} MiB of weights is more than the {a}",
                        b >> 20,
                        model_bytes >> 20
                    )),
                    _ => None,
                },
            ),
            Budget::All => (
                u64::MAX,
                match available {
                    Some(a) if model_bytes > a.bytes => Some(format!(
                        "no budget: the model's {} MiB will stay resident, more than the {a}",
                        model_bytes >> 20
                    )),
                    _ => None,
                },
            ),
            Budget::Auto => match usable {
                None => (u64::MAX, None),
                Some(u) if u >= model_bytes => (model_bytes, None),
                Some(u) if u >= floor => (u, None),
                // Short of memory: less room to fetch ahead (slower) rather than more memory
                // than the machine has, down to the least budget the model runs in.
                Some(u) => {
                    let bytes = u.max(least).min(model_bytes);
                    (
                        bytes,
                        Some(format!(
                            "streaming would like about {} MiB (the layers held through a pass \
                             and two of the largest other), more than lit would take of the {}; \
                             using {} MiB{}",
                            floor >> 20,
                            available.expect("usable comes from it"),
                            bytes >> 20,
                            if u < least {
                                ", the least the model runs in"
                            } else {
                                ""
                            }
                        )),
                    )
                }
            },
        };
        BudgetChoice {
            asked,
            bytes,
            model_bytes,
            available,
            warning,
        }
    }

    /// [`BudgetChoice::resolve`] with the memory available now.
    pub(crate) fn for_this_process(
        asked: Budget,
        model_bytes: u64,
        least: u64,
        floor: u64,
        largest: u64,
    ) -> Self {
        Self::resolve(
            asked,
            model_bytes,
            least,
            floor,
            largest,
            memory::available(),
        )
    }
}

impl fmt::Display for BudgetChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = |b: u64| b >> 20;
        match (self.asked, self.available) {
            (Budget::Bytes(b), _) => write!(f, "budget {} MiB", mib(b)),
            (Budget::All, _) => write!(f, "no budget (all {} MiB resident)", mib(self.model_bytes)),
            (Budget::Auto, None) => write!(
                f,
                "budget: all {} MiB resident (memory available unknown)",
                mib(self.model_bytes)
            ),
            (Budget::Auto, Some(a)) if self.bytes >= self.model_bytes => write!(
                f,
                "budget: all {} MiB of weights resident (fits in the {a})",
                mib(self.model_bytes)
            ),
            (Budget::Auto, Some(a)) => write!(
                f,
                "budget: {} MiB of the model's {} MiB, streaming the rest ({}/{} of the {a}, \
                 after {} MiB for the process and a layer's worth for working copies)",
                mib(self.bytes),
                mib(self.model_bytes),
                AUTO_SHARE.0,
                AUTO_SHARE.1,
                mib(PROCESS_RESERVE)
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    fn avail(mib: u64) -> Option<Available> {
        Some(Available {
            bytes: mib * MIB,
            cgroup_limit: None,
        })
    }

    #[test]
    fn auto_keeps_a_model_that_fits_whole() {
        let c = BudgetChoice::resolve(
            Budget::Auto,
            500 * MIB,
            50 * MIB,
            2 * 50 * MIB,
            50 * MIB,
            avail(24_000),
        );
        assert_eq!(c.bytes, 500 * MIB);
        assert!(c.warning.is_none());
        assert!(c.to_string().contains("all 500 MiB"), "{c}");
    }

    #[test]
    fn auto_streams_a_model_larger_than_memory() {
        let c = BudgetChoice::resolve(
            Budget::Auto,
            2048 * MIB,
            100 * MIB,
            2 * 100 * MIB,
            100 * MIB,
            avail(1164),
        );
        assert_eq!(c.bytes, 750 * MIB, "3/4 of (1164 - 64 - 100) MiB");
        assert!(c.warning.is_none());
        assert!(
            c.to_string().contains("750 MiB of the model's 2048 MiB"),
            "{c}"
        );
    }

    #[test]
    fn auto_goes_below_the_floor_only_as_far_as_the_least_budget_and_says_so() {
        // 3/4 of (900 - 64 - 300) = 402 MiB: below the 600 MiB floor, above the least.
        let c = BudgetChoice::resolve(
            Budget::Auto,
            2048 * MIB,
            300 * MIB,
            600 * MIB,
            300 * MIB,
            avail(900),
        );
        assert_eq!(c.bytes, 402 * MIB);
        let w = c.warning.as_deref().unwrap();
        assert!(w.contains("600 MiB") && w.contains("using 402 MiB"), "{w}");
        // No memory to spare: the least budget, never above the model.
        let c = BudgetChoice::resolve(
            Budget::Auto,
            500 * MIB,
            300 * MIB,
            600 * MIB,
            300 * MIB,
            avail(300),
        );
        assert_eq!(c.bytes, 300 * MIB);
        assert!(
            c.warning
                .as_deref()
                .unwrap()
                .contains("the least the model runs in")
        );
        let c = BudgetChoice::resolve(
            Budget::Auto,
            200 * MIB,
            300 * MIB,
            600 * MIB,
            300 * MIB,
            avail(300),
        );
        assert_eq!(c.bytes, 200 * MIB);
        // A 30 MiB tied embedding among 2 MiB layers in a 96 MiB cgroup (SmolLM2 on its
        // blocks): the least budget, not twice the embedding.
        let c = BudgetChoice::resolve(
            Budget::Auto,
            96 * MIB,
            30 * MIB,
            60 * MIB,
            30 * MIB,
            avail(90),
        );
        assert_eq!(c.bytes, 30 * MIB);
    }

    #[test]
    fn unknown_memory_keeps_everything() {
        let c = BudgetChoice::resolve(
            Budget::Auto,
            2048 * MIB,
            300 * MIB,
            2 * 300 * MIB,
            300 * MIB,
            None,
        );
        assert_eq!(c.bytes, u64::MAX);
    }

    #[test]
    fn explicit_budgets_the_machine_cannot_hold_warn() {
        let c = BudgetChoice::resolve(
            Budget::Bytes(8192 * MIB),
            4096 * MIB,
            MIB,
            2 * MIB,
            MIB,
            avail(1024),
        );
        assert_eq!(c.bytes, 8192 * MIB);
        assert!(c.warning.is_some());
        let c = BudgetChoice::resolve(
            Budget::Bytes(512 * MIB),
            4096 * MIB,
            MIB,
            2 * MIB,
            MIB,
            avail(1024),
        );
        assert!(c.warning.is_none());
        let c = BudgetChoice::resolve(Budget::All, 4096 * MIB, MIB, 2 * MIB, MIB, avail(1024));
        assert_eq!(c.bytes, u64::MAX);
        assert!(c.warning.is_some());
    }
}
