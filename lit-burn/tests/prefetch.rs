//! Prefetch overlaps reads with compute: with a slow source, layer i+1 is being read while
//! layer i computes.

mod common;

use burn::nn::LinearLayout;
use burn::tensor::Device;
use common::*;
use lit_burn::{StreamOptions, Streamer};
use lit_core::{Event, Manifest, ObjectId, WeightSource};
use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A source that takes `delay` per read.
#[derive(Debug)]
struct Slow {
    inner: Arc<dyn WeightSource>,
    delay: Duration,
}

#[async_trait::async_trait]
impl WeightSource for Slow {
    fn manifest(&self) -> &Manifest {
        self.inner.manifest()
    }
    fn location(&self) -> &str {
        self.inner.location()
    }
    async fn read_range(&self, id: ObjectId, range: Range<u64>) -> lit_core::Result<bytes::Bytes> {
        std::thread::sleep(self.delay);
        self.inner.read_range(id, range).await
    }
}

/// (event kind, layer index).
type Logged = (&'static str, usize);

fn run(prefetch: usize) -> Vec<Logged> {
    let device = Device::flex();
    let (net, source, _tmp) = exported(20, &device);
    let slow: Arc<dyn WeightSource> = Arc::new(Slow {
        inner: source,
        delay: Duration::from_millis(30),
    });
    let log: Arc<Mutex<Vec<Logged>>> = Arc::default();
    let sink = log.clone();
    let observer = move |e: &Event<'_>| {
        let entry = match *e {
            Event::FetchStarted { index, .. } => ("fetch", index),
            Event::ComputeFinished { index, .. } => ("computed", index),
            _ => return,
        };
        sink.lock().unwrap().push(entry);
    };
    let skeleton = Net::new(LinearLayout::Row, &device);
    let total = slow.manifest().total_bytes;
    let streamer = Streamer::new(
        slow,
        &skeleton,
        StreamOptions::default()
            .with_budget(total / 2)
            .with_prefetch(prefetch)
            .with_observer(observer),
    )
    .unwrap();
    let slow_layer = || std::thread::sleep(Duration::from_millis(60));
    let embed = streamer.load(&skeleton.embed).unwrap();
    let mut h = embed.forward(input(&device));
    slow_layer();
    drop(embed);
    for b in &skeleton.blocks {
        let b = streamer.load(b).unwrap();
        h = b.forward(h);
        slow_layer();
    }
    let head = streamer.load(&skeleton.head).unwrap();
    assert_eq!(bits(head.forward(h)), bits(net.forward(input(&device))));
    drop(head);
    drop(streamer);
    log.lock().unwrap().clone()
}

fn pos(log: &[Logged], e: Logged) -> usize {
    log.iter()
        .position(|x| *x == e)
        .unwrap_or_else(|| panic!("{e:?} not in {log:?}"))
}

#[test]
fn next_layer_is_read_while_the_current_one_computes() {
    // Layers: 0 embed, 1..=4 blocks, 5 head. Blocks 1 and 2 are small enough to overlap.
    let log = run(1);
    assert!(
        pos(&log, ("fetch", 2)) < pos(&log, ("computed", 1)),
        "{log:?}"
    );
    let log = run(0);
    assert!(
        pos(&log, ("fetch", 2)) > pos(&log, ("computed", 1)),
        "without prefetch reads wait for the load: {log:?}"
    );
}
