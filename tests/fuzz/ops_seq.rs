//! The sequence cases: the recurrent layers (`Rnn`, `Gru`, `Lstm`, `Recurrent`) with random
//! sizes, options, inputs and initial states, their state dicts, d2l's language model
//! (`RnnLm`) on random token ids, and the text pipeline (`TimeMachine`, `Vocab`, d2l's two
//! partitions, `SeqDataLoader`) on random strings, corpora and batch geometries.
//!
//! Besides "no panic", the text cases check what costs nothing to check: every batch has its
//! geometry, an epoch yields the batches it counts, and `row_start` answers `None` past the
//! epoch. A wrong answer there fails the case as a panic would.

use crate::MAX_FILLED;
use crate::generator::{Gen, small_product};
use wgnn::data::text::{
    Partition, SeqBatches, SeqDataLoader, TimeMachine, Vocab, seq_data_iter_random,
    seq_data_iter_sequential, seq_data_iter_sequential_at,
};
use wgnn::models::RnnLm;
use wgnn::nn::{Gru, Lstm, Module, ModuleExt, Recurrent, Rnn, RnnCell, RnnOptions, RnnState};
use wgnn::rng::SplitMix64;
use wgnn::{DType, Result, Tensor};

/// This family's ops: a suite of its own (see `Suite::seq`).
pub const OPS: &[&str] = &[
    // recurrent layers
    "Rnn",
    "Gru",
    "Lstm",
    "Recurrent",
    "Recurrent::load_state_dict",
    // the language model
    "RnnLm",
    "RnnLm::predict",
    // text data
    "TimeMachine::from_text",
    "TimeMachine::load",
    "Vocab",
    "Vocab::decode",
    "seq_data_iter_sequential",
    "seq_data_iter_sequential_at",
    "seq_data_iter_random",
    "SeqDataLoader",
];

const CELLS: [RnnCell; 3] = [RnnCell::Tanh, RnnCell::Gru, RnnCell::Lstm];

/// Draws the operands of `op` and runs it when it is one of [`OPS`]; `None` otherwise.
pub fn run(g: &mut Gen, op: &str) -> Option<Result<Vec<Tensor>>> {
    OPS.contains(&op).then(|| draw(g, op))
}

fn draw(g: &mut Gen, op: &str) -> Result<Vec<Tensor>> {
    match op {
        "Rnn" | "Gru" | "Lstm" | "Recurrent" => {
            let cell = match op {
                "Rnn" => RnnCell::Tanh,
                "Gru" => RnnCell::Gru,
                "Lstm" => RnnCell::Lstm,
                _ => g.r.pick(&CELLS),
            };
            let (input, hidden, options) = (size(g), size(g), options(g));
            g.note(format!(" {op}({input}, {hidden}) {cell:?} {options:?}"));
            let dev = g.dev;
            let (i, h, o) = (input, hidden, options);
            // The wrappers dereference to the `Recurrent` they hold.
            match op {
                "Rnn" => drive(g, &mut *Rnn::with_options(i, h, o, dev)?, i, o.batch_first),
                "Gru" => drive(g, &mut *Gru::with_options(i, h, o, dev)?, i, o.batch_first),
                "Lstm" => drive(g, &mut *Lstm::with_options(i, h, o, dev)?, i, o.batch_first),
                _ => drive(
                    g,
                    &mut Recurrent::new(cell, i, h, o, dev)?,
                    i,
                    o.batch_first,
                ),
            }
        }
        "Recurrent::load_state_dict" => {
            // A layer's state dict into another of the same or of changed sizes, sometimes
            // with one entry replaced by a tensor of any shape and dtype.
            let cell = g.r.pick(&CELLS);
            let sizes = [1 + g.r.below(4), 1 + g.r.below(4), 1 + g.r.below(3)];
            let other = if g.r.chance(0.5) {
                sizes
            } else {
                let mut s = sizes;
                s[g.r.below(3)] = 1 + g.r.below(4);
                s
            };
            let other_cell = if g.r.chance(0.8) {
                cell
            } else {
                g.r.pick(&CELLS)
            };
            let layer = |cell, [i, h, l]: [usize; 3], dev| {
                Recurrent::new(cell, i, h, RnnOptions::default().layers(l), dev)
            };
            let mut from = layer(cell, sizes, g.dev)?;
            let mut into = layer(other_cell, other, g.dev)?;
            let mut dict = from.state_dict();
            if g.r.chance(0.3) {
                let name =
                    g.r.pick(&["weight_ih_l0", "weight_hh_l0", "bias_hh_l0", "x"]);
                let d = g.dims();
                let t = g.float(name, &d)?.detach();
                dict.insert(name, t);
            }
            let strict = g.r.chance(0.5);
            g.note(format!(
                " {cell:?}{sizes:?} into {other_cell:?}{other:?} strict={strict}"
            ));
            into.load_state_dict(&dict, strict)?;
            for (_, p) in into.named_parameters() {
                g.leaves.push(p.value().clone());
            }
            let [i, h, _] = other;
            g.note(" | forward");
            let batch = 1 + g.r.below(3);
            let x = g.tensor("x", &[2, batch, i], DType::F32)?;
            let (y, s) = into.forward_with_state(&x, None)?;
            if y.dims() != [2, batch, h] {
                panic!("a loaded {other_cell:?} gave outputs {:?}", y.dims());
            }
            Ok([y, s.h].into_iter().chain(s.c).collect())
        }
        "RnnLm" | "RnnLm::predict" => {
            let cell = g.r.pick(&CELLS);
            let (mut vocab, mut hidden, mut layers) = (1 + g.r.below(8), 1 + g.r.below(6), 1);
            match g.r.below(20) {
                0..3 => vocab = g.arg(),
                3..5 => hidden = g.arg(),
                5..7 => layers = g.arg(),
                7..14 => layers = 2,
                // Its one-hot table would hold 2^40 values (a huge size, as `HUGE`'s), the
                // weights 2^20 each.
                14 => (vocab, hidden) = (1 << 20, 1),
                _ => {}
            }
            g.note(format!(
                " RnnLm({cell:?}, vocab {vocab}, hidden {hidden}, {layers} layers)"
            ));
            let mut lm = RnnLm::new(cell, vocab, hidden, layers, g.dev)?;
            if op == "RnnLm::predict" {
                let len = if g.r.chance(0.9) { 1 + g.r.below(4) } else { 0 };
                let prefix = ids(g, len, vocab);
                let n = g.r.below(6);
                g.note(format!(" | predict({prefix:?}, {n})"));
                let out = lm.predict(&prefix, n)?;
                if out.len() != prefix.len() + n
                    || out[prefix.len()..].iter().any(|&t| t as usize >= vocab)
                {
                    panic!("predict gave {out:?}: not the prefix and {n} tokens of the vocabulary");
                }
                return Ok(vec![]);
            }
            for (_, p) in lm.named_parameters() {
                g.leaves.push(p.value().clone());
            }
            let (steps, batch) = (length(g), length(g));
            let d = if g.r.chance(0.85) {
                vec![steps, batch]
            } else {
                g.dims()
            };
            let n = small_product(&d, usize::MAX);
            let ids = if n <= MAX_FILLED && g.r.chance(0.7) {
                g.note(format!(" ids=u32{d:?}"));
                Tensor::from_vec(ids(g, n, vocab), d, g.dev)?
            } else {
                g.indices("ids", &d, vocab)?
            };
            if g.r.chance(0.15) {
                g.note(" | Module::forward");
                return Ok(vec![lm.forward(&ids)?]);
            }
            let state = state(g, &lm.rnn, batch)?;
            let (logits, s) = lm.forward_ids(&ids, state.as_ref())?;
            Ok([logits, s.h].into_iter().chain(s.c).collect())
        }
        "TimeMachine::from_text" => {
            let text = text(g);
            let tm = TimeMachine::from_text(&text)?;
            let (train, val) = tm.split();
            if train.len() + val.len() != tm.corpus.len()
                || tm.corpus.iter().any(|&i| i as usize >= tm.vocab.len())
            {
                panic!(
                    "a corpus of {} tokens split into {} + {}, or ids past a vocabulary of {}",
                    tm.corpus.len(),
                    train.len(),
                    val.len(),
                    tm.vocab.len()
                );
            }
            tm.vocab.decode(&tm.corpus)?;
            let again = tm.vocab.encode(&text);
            tm.vocab.decode(&again)?;
            Ok(vec![Tensor::from_slice(
                &tm.corpus,
                [tm.corpus.len()],
                g.dev,
            )?])
        }
        "TimeMachine::load" => {
            let bytes: Vec<u8> = if g.r.chance(0.5) {
                text(g).into_bytes()
            } else {
                let n = g.r.below(64);
                g.note(format!(" {n} random bytes"));
                (0..n).map(|_| g.r.next() as u8).collect()
            };
            let path = std::env::temp_dir().join(format!(
                "wgnn-fuzz-text-{}-{:?}.txt",
                std::process::id(),
                std::thread::current().id()
            ));
            std::fs::write(&path, &bytes).expect("write a fuzz input");
            let out = TimeMachine::load(&path);
            let _ = std::fs::remove_file(&path);
            out?;
            Ok(vec![])
        }
        "Vocab" => {
            let pieces = (0..g.r.below(30)).map(|_| piece(g)).collect::<Vec<_>>();
            let min_freq = g.arg();
            let reserved: Vec<&str> = (0..g.r.below(3))
                .map(|_| g.r.pick(&["<unk>", "<pad>", "<bos>", " ", "a", ""]))
                .collect();
            g.note(format!(
                " tokens {pieces:?} min_freq={min_freq} reserved={reserved:?}"
            ));
            let vocab = if g.r.chance(0.5) {
                Vocab::new(&pieces, min_freq, &reserved)
            } else {
                Vocab::from_chars(&pieces.concat(), min_freq, &reserved)
            };
            if vocab.index("<unk>") != Vocab::UNK || vocab.token(Vocab::UNK) != Some("<unk>") {
                panic!("<unk> is not at index 0: {:?}", vocab.tokens());
            }
            for t in &pieces {
                let i = vocab.index(t);
                vocab.decode(&[i])?;
            }
            decode_some(g, &vocab)
        }
        "Vocab::decode" => {
            let text = text(g);
            let tm = TimeMachine::from_text(&text)?;
            decode_some(g, &tm.vocab)
        }
        "seq_data_iter_sequential" | "seq_data_iter_sequential_at" | "seq_data_iter_random" => {
            let corpus = corpus(g)?;
            let (batch, steps) = (size(g), size(g));
            let mut rng = SplitMix64::new(g.r.next());
            g.note(format!(" batch_size={batch} num_steps={steps}"));
            let batches = match op {
                "seq_data_iter_sequential" => {
                    seq_data_iter_sequential(&corpus, batch, steps, &mut rng)?
                }
                "seq_data_iter_random" => seq_data_iter_random(&corpus, batch, steps, &mut rng)?,
                _ => {
                    let offset = g.arg();
                    g.note(format!(" offset={offset}"));
                    seq_data_iter_sequential_at(&corpus, batch, steps, offset)?
                }
            };
            walk(g, batches, corpus.len())
        }
        "SeqDataLoader" => {
            let corpus = corpus(g)?;
            let (batch, steps) = (size(g), size(g));
            let spec = g.r.pick(&["random", "Sequential", "RANDOM", "seq", ""]);
            let partition = Partition::parse(spec).unwrap_or(Partition::Sequential);
            let (seed, epoch) = (g.r.next(), g.r.pick(&[0, 1, 2, u64::MAX]));
            g.note(format!(
                " batch_size={batch} num_steps={steps} {} seed={seed:#x} epoch {epoch}",
                partition.name()
            ));
            let loader = SeqDataLoader::new(&corpus, batch, steps, partition, seed)?;
            if loader.batch_size() != batch || loader.num_steps() != steps {
                panic!("the loader's geometry changed");
            }
            walk(g, loader.epoch(epoch), corpus.len())
        }
        other => unreachable!("no case for op {other}"),
    }
}

/// Layers (mostly 1–3), dropout (mostly 0 or in [0, 0.9), sometimes any float) and
/// `batch_first`.
fn options(g: &mut Gen) -> RnnOptions {
    let layers = if g.r.chance(0.85) {
        1 + g.r.below(3)
    } else {
        g.arg()
    };
    let dropout = match g.r.below(10) {
        0..6 => 0.0,
        6..9 => g.r.unit() * 0.9,
        _ => g.value(),
    };
    RnnOptions::default()
        .layers(layers)
        .dropout(dropout)
        .batch_first(g.r.chance(0.5))
}

/// One recurrent network on a random input (mostly `[T, B, input]` in its layout, sometimes
/// with other features or of any shape and dtype) from a random initial state, sometimes a
/// second batch from the first's detached final state; its parameters become leaves whose
/// gradients the case reads after its backward.
fn drive(g: &mut Gen, rnn: &mut Recurrent, input: usize, batch_first: bool) -> Result<Vec<Tensor>> {
    let train = g.r.chance(0.7);
    rnn.set_train(train);
    for (_, p) in rnn.named_parameters() {
        g.leaves.push(p.value().clone());
    }
    let (steps, batch) = (length(g), length(g));
    let features = if g.r.chance(0.9) { input } else { g.dim() };
    let xd = match (g.r.chance(0.9), batch_first) {
        (true, false) => vec![steps, batch, features],
        (true, true) => vec![batch, steps, features],
        (false, _) => g.dims(),
    };
    g.note(format!(" train={train}"));
    let x = g.float_like("x", &xd, DType::F32)?;
    if g.r.chance(0.1) {
        g.note(" | Module::forward");
        return Ok(vec![rnn.forward(&x)?]);
    }
    let state = state(g, rnn, batch)?;
    let (y, s) = rnn.forward_with_state(&x, state.as_ref())?;
    let mut outs: Vec<Tensor> = [y, s.h.clone()].into_iter().chain(s.c.clone()).collect();
    if g.r.chance(0.2) {
        g.note(" | again from the detached state");
        let x2 = g.float_like("x2", &xd, x.dtype())?;
        let (y2, s2) = rnn.forward_with_state(&x2, Some(&s.detach()))?;
        outs.splice(0..0, [y2, s2.h].into_iter().chain(s2.c));
    }
    Ok(outs)
}

/// An initial state for `rnn` and a batch of `batch`: none (zeros), `zero_state` (sometimes
/// for another batch), or random tensors mostly of the right shape, sometimes of another, or
/// with a cell state where the cell has none (and none where it has).
fn state(g: &mut Gen, rnn: &Recurrent, batch: usize) -> Result<Option<RnnState>> {
    match g.r.below(10) {
        0..4 => Ok(None),
        4..6 => {
            let b = if g.r.chance(0.8) { batch } else { g.dim() };
            g.note(format!(" state=zero_state({b})"));
            Ok(Some(rnn.zero_state(b, g.dev)?))
        }
        _ => {
            let want = [rnn.num_layers(), batch, rnn.hidden_size()];
            let hd = if g.r.chance(0.8) {
                want.to_vec()
            } else {
                g.related(&want)
            };
            let h = g.float_like("h0", &hd, DType::F32)?;
            let lstm = rnn.cell() == RnnCell::Lstm;
            let c = if g.r.chance(0.85) == lstm {
                let cd = if g.r.chance(0.8) {
                    want.to_vec()
                } else {
                    g.related(&want)
                };
                Some(g.float_like("c0", &cd, h.dtype())?)
            } else {
                None
            };
            Ok(Some(RnnState { h, c }))
        }
    }
}

/// A number of steps or a batch: mostly 1–5, sometimes any dim (0 and huge included).
fn length(g: &mut Gen) -> usize {
    if g.r.chance(0.8) {
        1 + g.r.below(5)
    } else {
        g.dim()
    }
}

/// A size: mostly 1–5, sometimes 0–8 or huge.
fn size(g: &mut Gen) -> usize {
    if g.r.chance(0.85) {
        1 + g.r.below(5)
    } else {
        g.arg()
    }
}

/// `n` token ids, all below `vocab` mostly, else some at or past it.
fn ids(g: &mut Gen, n: usize, vocab: usize) -> Vec<u32> {
    let all_in = g.r.chance(0.6);
    (0..n)
        .map(|_| match all_in {
            true => g.r.below(vocab.max(1)) as u32,
            false => g.index_value(vocab),
        })
        .collect()
}

/// A piece of text: letters, words, spaces, line ends, digits, punctuation, non-ASCII
/// letters, control characters, or any `char`.
fn piece(g: &mut Gen) -> String {
    if g.r.chance(0.05) {
        let c = char::from_u32(g.r.next() as u32 % 0x11_0000).unwrap_or('\u{fffd}');
        return c.to_string();
    }
    g.r.pick(&[
        "a", "e", "t", "Z", "q", "a", "e", "t", "h", "s", " ", " ", "  ", "\n", "\r\n", "\t", "-",
        ".", "1895", "é", "ß", "İ", "\u{0}", "🚀", "\u{feff}", "Time", "machine", "<unk>",
    ])
    .to_string()
}

/// A text of 0 to 200 pieces (mostly short).
fn text(g: &mut Gen) -> String {
    let n = g.r.pick(&[0, 2, 10, 10, 40, 40, 200, 200]);
    let t: String = (0..n).map(|_| piece(g)).collect();
    g.note(format!(
        " text {:?}",
        t.chars().take(40).collect::<String>()
    ));
    t
}

/// A corpus of token ids: a random text's, or `0..len` (lengths 0 to 1,000).
fn corpus(g: &mut Gen) -> Result<Vec<u32>> {
    if g.r.chance(0.5) {
        return Ok(TimeMachine::from_text(&text(g))?.corpus);
    }
    let len = g.r.pick(&[0usize, 1, 2, 5, 20, 100, 1000]);
    g.note(format!(" corpus 0..{len}"));
    Ok((0..len as u32).collect())
}

/// `vocab.decode` of indices mostly in range, sometimes at or past its end.
fn decode_some(g: &mut Gen, vocab: &Vocab) -> Result<Vec<Tensor>> {
    let n = g.r.below(8);
    let ids = ids(g, n, vocab.len());
    g.note(format!(" | decode({ids:?})"));
    let _ = vocab.token(g.index_value(vocab.len()));
    let out = vocab.decode(&ids);
    if out.is_ok() == ids.iter().any(|&i| i as usize >= vocab.len()) {
        panic!("decode({ids:?}) over {} tokens gave {out:?}", vocab.len());
    }
    out.map(|_| vec![])
}

/// Takes every batch of an epoch, checking its geometry and that it lies in the corpus, puts
/// the first two on the device, and asks `row_start` about batches in and past the epoch.
fn walk(g: &mut Gen, batches: SeqBatches<'_>, len: usize) -> Result<Vec<Tensor>> {
    let n = batches.num_batches();
    g.note(format!(" | {n} batches from offset {}", batches.offset()));
    for _ in 0..4 {
        let i =
            g.r.pick(&[0, 1, n.saturating_sub(1), n, usize::MAX / 3, usize::MAX]);
        let b = g.r.pick(&[0, 1, 2, 7, usize::MAX]);
        let got = batches.row_start(i, b);
        if got.is_some() != (i < n && b < rows(&batches)) {
            panic!("row_start({i}, {b}) = {got:?} in an epoch of {n} batches");
        }
        if got.is_some_and(|s| s >= len) {
            panic!("row_start({i}, {b}) = {got:?} past a corpus of {len} tokens");
        }
    }
    let mut outs = Vec::new();
    let mut count = 0;
    for batch in batches {
        count += 1;
        let [bs, t] = batch.dims();
        if batch.x.len() != bs * t || batch.y.len() != bs * t {
            panic!(
                "a [{bs}, {t}] batch holds {} inputs and {} targets",
                batch.x.len(),
                batch.y.len()
            );
        }
        let (xt, yt) = (batch.x_time_major(), batch.y_time_major());
        if xt.len() != batch.x.len() || yt.len() != batch.y.len() {
            panic!("the time-major copies changed the batch's size");
        }
        if outs.len() < 4 {
            let (x, y) = batch.to_tensors(g.dev)?;
            outs.extend([x, y]);
        }
    }
    if count != n {
        panic!("an epoch of {n} batches yielded {count}");
    }
    Ok(outs)
}

/// The rows of an epoch's batches (its batch size; 0 when it has no batch).
fn rows(batches: &SeqBatches<'_>) -> usize {
    batches.clone().next().map_or(0, |b| b.batch_size)
}
