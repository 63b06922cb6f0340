//! A SIGBUS handler that turns a fault inside a store mapping into zeros and a mark, instead of
//! killing the process.
//!
//! Touching a mapped page whose file was truncated (or whose disk failed) raises SIGBUS. The
//! handler looks the faulting address up in a fixed table of live store mappings; inside one,
//! it maps anonymous zero pages over that whole mapping (`MAP_FIXED`), counts the fault on the
//! mapping's slot and returns, so the faulting instruction runs again and reads zeros. The reader
//! checks the count ([`faults`]) where it can return an error: after hashing a layer (which
//! touches every page) and before and after each use. Any other SIGBUS goes to the handler that
//! was installed before this one (Rust's own, which tells stack overflows apart), or to the
//! default action, so unrelated faults still kill the process as before.
//!
//! The same technique as systemd's journal reader (`sigbus.c`) and Sapling's indexedlog. The
//! handler only loads and stores atomics and makes system calls (`mmap`, `sigaction`, `raise`):
//! async-signal-safe. The table is a fixed array (never freed, so the handler never reads
//! freed memory), each slot a sequence lock: odd while its owner writes it.

use std::ffi::c_void;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering, fence};

/// Live mappings at once; beyond this, [`register`] refuses and the reader uses `pread`.
const SLOTS: usize = 4096;

/// Faults handled in one mapping before the handler gives up on it (a mapping that keeps
/// faulting after being replaced by zero pages would otherwise loop forever).
const MAX_FAULTS: usize = 1 << 16;

struct Slot {
    /// Even: stable (live if `end != 0`, free otherwise); odd: its owner is writing it.
    seq: AtomicUsize,
    start: AtomicUsize,
    end: AtomicUsize,
    faults: AtomicUsize,
}

static TABLE: [Slot; SLOTS] = [const {
    Slot {
        seq: AtomicUsize::new(0),
        start: AtomicUsize::new(0),
        end: AtomicUsize::new(0),
        faults: AtomicUsize::new(0),
    }
}; SLOTS];

/// One past the highest slot ever used: lookups scan no further.
static USED: AtomicUsize = AtomicUsize::new(0);

/// The SIGBUS disposition before [`install`], to chain to.
static PREVIOUS: OnceLock<libc::sigaction> = OnceLock::new();

/// Whether the handler is installed (installed once, on first use; never removed).
static INSTALLED: OnceLock<bool> = OnceLock::new();

/// The system's page size.
pub(super) fn page_size() -> usize {
    static PAGE: OnceLock<usize> = OnceLock::new();
    // SAFETY: sysconf has no preconditions.
    *PAGE.get_or_init(|| match unsafe { libc::sysconf(libc::_SC_PAGESIZE) } {
        n if n > 0 => n as usize,
        _ => 4096,
    })
}

/// Installs the handler (once per process); false if the system refused it, in which case
/// nothing may be mapped.
pub(super) fn install() -> bool {
    *INSTALLED.get_or_init(|| {
        // SAFETY: both sigaction structs are plain data, zero-initialised and then filled; the
        // handler is an `extern "C"` function with the SA_SIGINFO signature.
        unsafe {
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, std::ptr::null(), &mut previous) != 0 {
                return false;
            }
            let _ = PREVIOUS.set(previous);
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_sigbus as *const () as usize;
            action.sa_flags = libc::SA_SIGINFO | libc::SA_ONSTACK;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, std::ptr::null_mut()) == 0
        }
    })
}

/// Claims a slot for the mapping covering the page-aligned `start..end`; `None` if the table is
/// full.
pub(super) fn register(start: usize, end: usize) -> Option<usize> {
    debug_assert!(start < end);
    for (index, slot) in TABLE.iter().enumerate() {
        let seq = slot.seq.load(Ordering::Relaxed);
        if seq % 2 == 1 || slot.end.load(Ordering::Relaxed) != 0 {
            continue;
        }
        // The sequence only grows, so a slot claimed and freed meanwhile fails this exchange.
        if slot
            .seq
            .compare_exchange(seq, seq + 1, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        fence(Ordering::Release);
        slot.faults.store(0, Ordering::Relaxed);
        slot.start.store(start, Ordering::Relaxed);
        slot.end.store(end, Ordering::Relaxed);
        slot.seq.store(seq + 2, Ordering::Release);
        USED.fetch_max(index + 1, Ordering::Release);
        return Some(index);
    }
    None
}

/// Frees `index`, before its mapping is unmapped (so the handler never maps zero pages over
/// memory that has been reused).
pub(super) fn unregister(index: usize) {
    let slot = &TABLE[index];
    let seq = slot.seq.load(Ordering::Relaxed);
    slot.seq.store(seq + 1, Ordering::Relaxed);
    fence(Ordering::Release);
    slot.end.store(0, Ordering::Relaxed);
    slot.start.store(0, Ordering::Relaxed);
    slot.seq.store(seq + 2, Ordering::Release);
}

/// Slot `index`'s sequence number: even and unchanged while one mapping holds it.
pub(super) fn seq(index: usize) -> usize {
    TABLE[index].seq.load(Ordering::Acquire)
}

/// The live slot whose mapping contains `addr`, with its bounds.
pub(super) fn find(addr: usize) -> Option<(usize, usize, usize)> {
    let used = USED.load(Ordering::Acquire).min(SLOTS);
    for (index, slot) in TABLE[..used].iter().enumerate() {
        let seq = slot.seq.load(Ordering::Acquire);
        if seq % 2 == 1 {
            continue;
        }
        let start = slot.start.load(Ordering::Relaxed);
        let end = slot.end.load(Ordering::Relaxed);
        fence(Ordering::Acquire);
        if slot.seq.load(Ordering::Relaxed) != seq || end == 0 {
            continue;
        }
        if (start..end).contains(&addr) {
            return Some((index, start, end));
        }
    }
    None
}

/// Faults the handler turned into zeros in slot `index`'s mapping.
pub(super) fn faults(index: usize) -> usize {
    TABLE[index].faults.load(Ordering::Acquire)
}

extern "C" fn on_sigbus(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo for an SA_SIGINFO handler (checked for null
    // anyway). `si_code > 0` means the kernel raised it for a fault, so `si_addr` is the
    // faulting address.
    let fault = unsafe { info.as_ref() }
        .filter(|i| i.si_code > 0)
        .map(|i| unsafe { i.si_addr() } as usize);
    if let Some((index, start, end)) = fault.and_then(find) {
        let slot = &TABLE[index];
        if slot.faults.fetch_add(1, Ordering::AcqRel) < MAX_FAULTS {
            // SAFETY: `start..end` is a live store mapping: the faulting thread is reading it,
            // so the `Bytes` that owns it is alive and the slot cannot be freed (the owner
            // unregisters before unmapping). Replacing its pages with private zero pages
            // touches nothing else. errno is saved around the call, as a handler must.
            unsafe {
                let errno = *libc::__errno_location();
                let zeros = libc::mmap(
                    start as *mut c_void,
                    end - start,
                    libc::PROT_READ,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED,
                    -1,
                    0,
                );
                *libc::__errno_location() = errno;
                if zeros != libc::MAP_FAILED {
                    return;
                }
            }
        }
    }
    // SAFETY: the previous disposition as the kernel gave it; calling its handler with the
    // arguments this one received is what the kernel would have done.
    unsafe { chain(signal, info, context) }
}

/// Hands the signal to the disposition before ours.
///
/// # Safety
/// Only from the signal handler, with the kernel's arguments.
unsafe fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut c_void) {
    let user_sent = unsafe { info.as_ref() }.is_none_or(|i| i.si_code <= 0);
    match PREVIOUS.get() {
        Some(previous)
            if previous.sa_sigaction != libc::SIG_DFL && previous.sa_sigaction != libc::SIG_IGN =>
        {
            if previous.sa_flags & libc::SA_SIGINFO != 0 {
                // SAFETY: an SA_SIGINFO handler has this signature.
                let handler: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut c_void) =
                    unsafe { std::mem::transmute(previous.sa_sigaction) };
                handler(signal, info, context);
            } else {
                // SAFETY: a plain handler has this signature.
                let handler: extern "C" fn(libc::c_int) =
                    unsafe { std::mem::transmute(previous.sa_sigaction) };
                handler(signal);
            }
        }
        Some(previous) if previous.sa_sigaction == libc::SIG_IGN && user_sent => {}
        _ => {
            // Back to the default action: a fault recurs when the instruction runs again and
            // kills the process as if this handler had never been there; a signal sent by a
            // process is raised again (blocked until this handler returns).
            // SAFETY: plain data, and sigaction/raise are async-signal-safe.
            unsafe {
                let mut default: libc::sigaction = std::mem::zeroed();
                default.sa_sigaction = libc::SIG_DFL;
                libc::sigaction(signal, &default, std::ptr::null_mut());
                if user_sent {
                    libc::raise(signal);
                }
            }
        }
    }
}
