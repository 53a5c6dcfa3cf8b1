//! Text for language models: The Time Machine, d2l's character preprocessing, a vocabulary,
//! a held-out validation part, and the two minibatch partitions of d2l's chapter 8
//! (`seq_data_iter_random` and `seq_data_iter_sequential`).
//!
//! What lives here is host data only: token ids as `u32`, batches as `Vec<u32>` with their
//! dims, and [`SeqBatch::to_tensors`] to put a batch on a device. The recurrent layers are in
//! `nn`, the training loop in `examples/char_lm.rs`.
//!
//! # Preprocessing (d2l's `read_time_machine` and `load_corpus_time_machine`)
//! Per line, every run of characters outside `A-Za-z` becomes one space, the line is stripped
//! and lower-cased; the character tokens of all lines are concatenated with no separator
//! between lines. The vendored text gives 170,580 tokens and a 28-entry vocabulary
//! (`<unk>`, space, 26 letters).
//!
//! # Randomness, so that a Python twin draws the same numbers
//! Epoch `e` (counted from 0) of a run with seed `s` draws from one fresh generator,
//! [`epoch_rng`]`(s, e)` = `SplitMix64::new(s ^ (e + 1).wrapping_mul(0xA24B_AED4_963E_E407))`
//! (the mix [`epoch_permutation`](super::epoch_permutation) uses), in this order:
//! - sequential: `offset = rng.below(T + 1)` (one draw, `0..=T`, d2l's `randint(0, T)`);
//! - random: `offset = rng.below(T)` (`0..T`, d2l's `randint(0, T - 1)`), then a Fisher–Yates
//!   shuffle of the `n` subsequence starts: `for i in (1..n).rev() { j = rng.below(i + 1);
//!   starts.swap(i, j) }`.
//!
//! [`SplitMix64::below`] is Lemire's multiply-shift, `(next_u64() as u128 * n) >> 64`, so the
//! twin (`benches/char_lm.py`) needs only 64-bit masking to match bit for bit.
//!
//! ```no_run
//! use wgnn::data::{Partition, SeqDataLoader, TimeMachine};
//! # fn main() -> wgnn::Result<()> {
//! let tm = TimeMachine::load_default()?;
//! assert_eq!((tm.corpus.len(), tm.vocab.len()), (170_580, 28));
//! let loader = SeqDataLoader::new(tm.train(), 32, 35, Partition::Sequential, 42)?;
//! for batch in loader.epoch(0) {
//!     let (x, y) = batch.to_tensors(&wgnn::Device::cpu())?; // u32 [32, 35] each
//!     # let _ = (x, y);
//! }
//! # Ok(()) }
//! ```

use crate::device::Device;
use crate::error::{Error, Result};
use crate::rng::SplitMix64;
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The vendored text's file name under `data/timemachine/`.
pub const TIME_MACHINE_FILE: &str = "timemachine.txt";

/// The token that stands for every token outside the vocabulary; index [`Vocab::UNK`].
pub const UNK_TOKEN: &str = "<unk>";

/// The share of the corpus held out for validation, in percent: the last tenth of the tokens.
pub const VALIDATION_PERCENT: usize = 10;

/// The file [`TimeMachine::load_default`] reads: `data/timemachine/timemachine.txt` vendored
/// with this crate (found through `CARGO_MANIFEST_DIR`, as the MNIST data is).
pub fn default_time_machine_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/data/timemachine/timemachine.txt"
    ))
}

/// d2l's preprocessing of one line: `re.sub('[^A-Za-z]+', ' ', line).strip().lower()`.
///
/// Only ASCII letters count as letters (as in the regular expression), so `é` or a digit
/// becomes part of a run of spaces.
pub fn preprocess_line(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut in_gap = false;
    for c in line.chars() {
        if c.is_ascii_alphabetic() {
            if in_gap && !out.is_empty() {
                out.push(' ');
            }
            in_gap = false;
            out.push(c.to_ascii_lowercase());
        } else {
            in_gap = true;
        }
    }
    // A trailing gap is never pushed and a leading one is skipped: that is the strip().
    out
}

/// [`preprocess_line`] over every line of `text` (lines as Python's `readlines` splits them
/// on `\n`; a `\r` is a non-letter and disappears with the strip). Empty lines stay, as
/// empty strings, so the result has one entry per line.
pub fn preprocess(text: &str) -> Vec<String> {
    text.lines().map(preprocess_line).collect()
}

/// A vocabulary as d2l's `Vocab`: index 0 is [`UNK_TOKEN`], then the reserved tokens, then
/// the tokens seen at least `min_freq` times by descending frequency, ties in the order they
/// first occur (Python's stable `sorted` over a `Counter`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vocab {
    idx_to_token: Vec<String>,
    token_to_idx: HashMap<String, u32>,
    token_freqs: Vec<(String, usize)>,
}

impl Vocab {
    /// The index of [`UNK_TOKEN`], which every unknown token maps to.
    pub const UNK: u32 = 0;

    /// Counts `tokens` and builds the vocabulary. Tokens seen fewer than `min_freq` times are
    /// left out (and so map to `<unk>`); `min_freq` 0 or 1 keeps every token. A reserved token
    /// that also occurs in the text keeps its reserved index.
    pub fn new<I, S>(tokens: I, min_freq: usize, reserved: &[&str]) -> Vocab
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        // Counter in first-occurrence order: the order a stable sort keeps for ties.
        let mut first_seen: HashMap<String, usize> = HashMap::new();
        let mut token_freqs: Vec<(String, usize)> = Vec::new();
        for t in tokens {
            let t = t.as_ref();
            match first_seen.get(t) {
                Some(&i) => token_freqs[i].1 += 1,
                None => {
                    first_seen.insert(t.to_owned(), token_freqs.len());
                    token_freqs.push((t.to_owned(), 1));
                }
            }
        }
        // Stable, so ties keep their first occurrence (Python's sorted(reverse=True) too).
        token_freqs.sort_by_key(|(_, f)| std::cmp::Reverse(*f));
        let mut vocab = Vocab {
            idx_to_token: Vec::new(),
            token_to_idx: HashMap::new(),
            token_freqs: Vec::new(),
        };
        for t in std::iter::once(UNK_TOKEN).chain(reserved.iter().copied()) {
            vocab.push(t);
        }
        for (t, f) in &token_freqs {
            if *f < min_freq {
                break;
            }
            vocab.push(t);
        }
        vocab.token_freqs = token_freqs;
        vocab
    }

    /// A character vocabulary: every `char` of `text` is a token.
    pub fn from_chars(text: &str, min_freq: usize, reserved: &[&str]) -> Vocab {
        let mut buf = [0u8; 4];
        Vocab::new(
            text.chars().map(|c| c.encode_utf8(&mut buf).to_owned()),
            min_freq,
            reserved,
        )
    }

    fn push(&mut self, token: &str) {
        if !self.token_to_idx.contains_key(token) {
            self.token_to_idx
                .insert(token.to_owned(), self.idx_to_token.len() as u32);
            self.idx_to_token.push(token.to_owned());
        }
    }

    /// Number of entries, `<unk>` and the reserved tokens included.
    pub fn len(&self) -> usize {
        self.idx_to_token.len()
    }

    /// Never true: `<unk>` is always there. (Here because clippy pairs it with `len`.)
    pub fn is_empty(&self) -> bool {
        self.idx_to_token.is_empty()
    }

    /// The index of `token`, [`Vocab::UNK`] if it is not in the vocabulary.
    pub fn index(&self, token: &str) -> u32 {
        self.token_to_idx.get(token).copied().unwrap_or(Vocab::UNK)
    }

    /// The token at `index`, `None` past the end.
    pub fn token(&self, index: u32) -> Option<&str> {
        self.idx_to_token.get(index as usize).map(String::as_str)
    }

    /// Every token, by index (`tokens()[0] == "<unk>"`).
    pub fn tokens(&self) -> &[String] {
        &self.idx_to_token
    }

    /// The counted tokens with their frequencies, most frequent first (ties in order of first
    /// occurrence), including those below `min_freq`: d2l's `token_freqs`.
    pub fn token_freqs(&self) -> &[(String, usize)] {
        &self.token_freqs
    }

    /// The index of every `char` of `text` (a character vocabulary's encoder).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let mut buf = [0u8; 4];
        text.chars()
            .map(|c| self.index(c.encode_utf8(&mut buf)))
            .collect()
    }

    /// The tokens at `indices`, concatenated (d2l's `''.join(vocab.to_tokens(...))`); index 0
    /// gives `<unk>`. An index past the vocabulary is an error naming it.
    pub fn decode(&self, indices: &[u32]) -> Result<String> {
        let mut out = String::with_capacity(indices.len());
        for (pos, &i) in indices.iter().enumerate() {
            let t = self.token(i).ok_or_else(|| {
                Error::invalid(
                    "Vocab::decode",
                    format!(
                        "index {i} at position {pos} is outside the vocabulary of {} tokens",
                        self.len()
                    ),
                )
            })?;
            out.push_str(t);
        }
        Ok(out)
    }
}

/// A character corpus (d2l's `load_corpus_time_machine`): the vocabulary and every character
/// token of the preprocessed text as an index, with the last [`VALIDATION_PERCENT`] % of the
/// tokens held out for validation.
#[derive(Clone, Debug)]
pub struct TimeMachine {
    /// The character vocabulary built from the whole text (`min_freq` 0, nothing reserved).
    pub vocab: Vocab,
    /// Every token's index, lines concatenated without separators.
    pub corpus: Vec<u32>,
}

impl TimeMachine {
    /// Reads and preprocesses the vendored text ([`default_time_machine_path`]).
    pub fn load_default() -> Result<TimeMachine> {
        TimeMachine::load(&default_time_machine_path())
    }

    /// Reads and preprocesses the text file at `path`. Errors name the file: missing (with
    /// where the vendored copy lives), unreadable, not UTF-8, or without a single letter.
    pub fn load(path: &Path) -> Result<TimeMachine> {
        let bytes = std::fs::read(path).map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Error::data(
                    path,
                    format!(
                        "text file not found; The Time Machine is vendored at {} \
                         (data/timemachine/ in the wgnn repository)",
                        default_time_machine_path().display()
                    ),
                )
            } else {
                Error::io(path, e)
            }
        })?;
        let text = String::from_utf8(bytes).map_err(|e| {
            Error::data(
                path,
                format!("not UTF-8 text (byte {})", e.utf8_error().valid_up_to()),
            )
        })?;
        TimeMachine::from_text(&text).map_err(|e| match e {
            Error::InvalidArgument { msg, .. } => Error::data(path, msg),
            e => e,
        })
    }

    /// Preprocesses `text` as [`TimeMachine::load`] does a file. A text without a single
    /// ASCII letter is an error.
    pub fn from_text(text: &str) -> Result<TimeMachine> {
        let lines = preprocess(text);
        let joined: String = lines.concat();
        if joined.is_empty() {
            return Err(Error::invalid(
                "TimeMachine",
                "the text has no ASCII letters, so no tokens after preprocessing",
            ));
        }
        let vocab = Vocab::from_chars(&joined, 0, &[]);
        let corpus = vocab.encode(&joined);
        Ok(TimeMachine { vocab, corpus })
    }

    /// The number of tokens held out: `len / 10` (rounded down), the last ones.
    pub fn validation_len(&self) -> usize {
        self.corpus.len() * VALIDATION_PERCENT / 100
    }

    /// `(train, validation)`: the corpus cut before its last [`TimeMachine::validation_len`]
    /// tokens.
    pub fn split(&self) -> (&[u32], &[u32]) {
        self.corpus
            .split_at(self.corpus.len() - self.validation_len())
    }

    /// The first 90 % of the tokens (153,522 of The Time Machine's 170,580).
    pub fn train(&self) -> &[u32] {
        self.split().0
    }

    /// The last 10 % of the tokens (17,058 of The Time Machine's 170,580).
    pub fn validation(&self) -> &[u32] {
        self.split().1
    }
}

/// How a corpus is cut into minibatches of subsequences (d2l's `use_random_iter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Partition {
    /// `seq_data_iter_random`: subsequences in random order; neighbouring batches are not
    /// neighbours in the text, so the state is reset for every batch.
    Random,
    /// `seq_data_iter_sequential`: row `b` of batch `i + 1` continues row `b` of batch `i`,
    /// so the state can be carried (and detached) from batch to batch.
    Sequential,
}

impl Partition {
    /// Parses `random` or `sequential` (e.g. a `--partition` flag).
    pub fn parse(spec: &str) -> Result<Partition> {
        match spec.to_ascii_lowercase().as_str() {
            "random" => Ok(Partition::Random),
            "sequential" => Ok(Partition::Sequential),
            other => Err(Error::invalid(
                "--partition",
                format!("unknown partition \"{other}\" (random, sequential)"),
            )),
        }
    }

    /// `random` or `sequential`.
    pub fn name(self) -> &'static str {
        match self {
            Partition::Random => "random",
            Partition::Sequential => "sequential",
        }
    }
}

/// The generator epoch `epoch` (from 0) of a run seeded `seed` draws its offset and shuffle
/// from: `SplitMix64::new(seed ^ (epoch + 1).wrapping_mul(0xA24B_AED4_963E_E407))`.
pub fn epoch_rng(seed: u64, epoch: u64) -> SplitMix64 {
    SplitMix64::new(seed ^ epoch.wrapping_add(1).wrapping_mul(0xA24B_AED4_963E_E407))
}

/// Checks batch size and steps against a corpus of `len` tokens for the worst offset
/// `max_offset`: `need_subseqs` subsequences of `num_steps + 1` tokens (inputs and the
/// shifted targets) must fit after it, whatever offset is drawn.
fn check_fits(
    op: &'static str,
    len: usize,
    batch_size: usize,
    num_steps: usize,
    max_offset: usize,
) -> Result<()> {
    if batch_size == 0 || num_steps == 0 {
        return Err(Error::invalid(
            op,
            format!("batch_size {batch_size}, num_steps {num_steps}: both must be at least 1"),
        ));
    }
    // One batch needs batch_size * num_steps inputs plus one more token for the last target.
    let need = batch_size
        .checked_mul(num_steps)
        .and_then(|n| n.checked_add(max_offset))
        .and_then(|n| n.checked_add(1))
        .ok_or_else(|| {
            Error::invalid(
                op,
                format!(
                    "batch_size {batch_size} × num_steps {num_steps} + offset {max_offset} \
                     overflows usize"
                ),
            )
        })?;
    if len < need {
        return Err(Error::invalid(
            op,
            format!(
                "a corpus of {len} tokens is too short for one batch of {batch_size} × \
                 {num_steps} tokens after an offset of up to {max_offset}: it needs at least \
                 {need} tokens"
            ),
        ));
    }
    Ok(())
}

/// d2l's `seq_data_iter_sequential` with the offset drawn from `rng` (`rng.below(T + 1)`):
/// `n = (len − offset − 1) / B · B` tokens from `offset` are laid out as `B` rows of `n / B`,
/// and batch `i` is columns `i·T .. (i+1)·T` of them (targets one token further on), so row
/// `b` of each batch continues row `b` of the one before.
///
/// Errors: `batch_size` or `num_steps` 0, or a corpus shorter than `B·T + T + 1` tokens (too
/// short for one batch at the largest offset). Nothing is drawn from `rng` on an error.
pub fn seq_data_iter_sequential<'a>(
    corpus: &'a [u32],
    batch_size: usize,
    num_steps: usize,
    rng: &mut SplitMix64,
) -> Result<SeqBatches<'a>> {
    check_fits(
        "seq_data_iter_sequential",
        corpus.len(),
        batch_size,
        num_steps,
        num_steps,
    )?;
    let offset = rng.below(num_steps as u64 + 1) as usize;
    seq_data_iter_sequential_at(corpus, batch_size, num_steps, offset)
}

/// [`seq_data_iter_sequential`] at a given `offset` instead of a random one: what validation
/// uses (offset 0, every epoch the same batches).
///
/// Errors: `batch_size` or `num_steps` 0, or fewer than `offset + B·T + 1` tokens.
pub fn seq_data_iter_sequential_at(
    corpus: &[u32],
    batch_size: usize,
    num_steps: usize,
    offset: usize,
) -> Result<SeqBatches<'_>> {
    check_fits(
        "seq_data_iter_sequential",
        corpus.len(),
        batch_size,
        num_steps,
        offset,
    )?;
    let num_tokens = (corpus.len() - offset - 1) / batch_size * batch_size;
    let row_len = num_tokens / batch_size;
    let num_batches = row_len / num_steps;
    let mut starts = Vec::with_capacity(num_batches * batch_size);
    for i in 0..num_batches {
        for b in 0..batch_size {
            starts.push(offset + b * row_len + i * num_steps);
        }
    }
    Ok(SeqBatches::new(
        corpus, batch_size, num_steps, offset, starts,
    ))
}

/// d2l's `seq_data_iter_random`: drops a random prefix of `offset = rng.below(T)` tokens,
/// cuts the rest into the `n = (len − offset − 1) / T` subsequences starting at
/// `offset + k·T`, shuffles their starts (Fisher–Yates from the back, `j = rng.below(i + 1)`),
/// and yields `n / B` batches of `B` consecutive starts of that order. Every subsequence is
/// used at most once per epoch.
///
/// Errors: `batch_size` or `num_steps` 0, or a corpus shorter than `B·T + T` tokens (too short
/// for one batch at the largest offset). Nothing is drawn from `rng` on an error.
pub fn seq_data_iter_random<'a>(
    corpus: &'a [u32],
    batch_size: usize,
    num_steps: usize,
    rng: &mut SplitMix64,
) -> Result<SeqBatches<'a>> {
    check_fits(
        "seq_data_iter_random",
        corpus.len(),
        batch_size,
        num_steps,
        num_steps - usize::from(num_steps > 0),
    )?;
    let offset = rng.below(num_steps as u64) as usize;
    let n = (corpus.len() - offset - 1) / num_steps;
    let mut starts: Vec<usize> = (0..n).map(|k| offset + k * num_steps).collect();
    for i in (1..n).rev() {
        let j = rng.below(i as u64 + 1) as usize;
        starts.swap(i, j);
    }
    starts.truncate(n / batch_size * batch_size);
    Ok(SeqBatches::new(
        corpus, batch_size, num_steps, offset, starts,
    ))
}

/// d2l's `SeqDataLoader`: a corpus, the batch geometry, the partition and a seed; each epoch
/// draws its batches from [`epoch_rng`]`(seed, epoch)`.
#[derive(Clone, Debug)]
pub struct SeqDataLoader<'a> {
    corpus: &'a [u32],
    batch_size: usize,
    num_steps: usize,
    partition: Partition,
    seed: u64,
}

impl<'a> SeqDataLoader<'a> {
    /// Checks the geometry once (errors as [`seq_data_iter_sequential`] and
    /// [`seq_data_iter_random`]), so that [`SeqDataLoader::epoch`] cannot fail.
    pub fn new(
        corpus: &'a [u32],
        batch_size: usize,
        num_steps: usize,
        partition: Partition,
        seed: u64,
    ) -> Result<SeqDataLoader<'a>> {
        let loader = SeqDataLoader {
            corpus,
            batch_size,
            num_steps,
            partition,
            seed,
        };
        loader.try_epoch(0)?;
        Ok(loader)
    }

    fn try_epoch(&self, epoch: u64) -> Result<SeqBatches<'a>> {
        let mut rng = epoch_rng(self.seed, epoch);
        match self.partition {
            Partition::Sequential => {
                seq_data_iter_sequential(self.corpus, self.batch_size, self.num_steps, &mut rng)
            }
            Partition::Random => {
                seq_data_iter_random(self.corpus, self.batch_size, self.num_steps, &mut rng)
            }
        }
    }

    /// The batches of epoch `epoch` (from 0); the same epoch gives the same batches.
    pub fn epoch(&self, epoch: u64) -> SeqBatches<'a> {
        match self.try_epoch(epoch) {
            Ok(b) => b,
            // `new` checked the geometry for the worst offset, so every epoch fits.
            Err(_) => unreachable!("SeqDataLoader::new checked the geometry"),
        }
    }

    /// The partition.
    pub fn partition(&self) -> Partition {
        self.partition
    }

    /// Subsequences per batch (`B`).
    pub fn batch_size(&self) -> usize {
        self.batch_size
    }

    /// Time steps per subsequence (`T`).
    pub fn num_steps(&self) -> usize {
        self.num_steps
    }
}

/// The batches of one epoch: an iterator of [`SeqBatch`], each `B` subsequences of `T` tokens.
#[derive(Clone, Debug)]
pub struct SeqBatches<'a> {
    corpus: &'a [u32],
    batch_size: usize,
    num_steps: usize,
    offset: usize,
    /// The start of every row of every batch, batch-major (`B` per batch).
    starts: Vec<usize>,
    next: usize,
}

impl<'a> SeqBatches<'a> {
    fn new(
        corpus: &'a [u32],
        batch_size: usize,
        num_steps: usize,
        offset: usize,
        starts: Vec<usize>,
    ) -> SeqBatches<'a> {
        SeqBatches {
            corpus,
            batch_size,
            num_steps,
            offset,
            starts,
            next: 0,
        }
    }

    /// The offset drawn for this epoch (the prefix skipped).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Batches in the epoch, those already taken included.
    pub fn num_batches(&self) -> usize {
        self.starts.len() / self.batch_size
    }

    /// Input tokens in the epoch: `num_batches · B · T`.
    pub fn num_tokens(&self) -> usize {
        self.starts.len() * self.num_steps
    }

    /// Where row `b` of batch `i` starts in the corpus (its targets start one further on).
    pub fn row_start(&self, i: usize, b: usize) -> Option<usize> {
        if b >= self.batch_size {
            return None;
        }
        // Checked: `i · B + b` past `usize::MAX` would wrap to a row of an early batch.
        self.starts
            .get(i.checked_mul(self.batch_size)?.checked_add(b)?)
            .copied()
    }
}

impl Iterator for SeqBatches<'_> {
    type Item = SeqBatch;

    fn next(&mut self) -> Option<SeqBatch> {
        let rows = self
            .starts
            .get(self.next * self.batch_size..(self.next + 1) * self.batch_size)?;
        self.next += 1;
        let t = self.num_steps;
        let mut x = Vec::with_capacity(rows.len() * t);
        let mut y = Vec::with_capacity(rows.len() * t);
        for &s in rows {
            x.extend_from_slice(&self.corpus[s..s + t]);
            y.extend_from_slice(&self.corpus[s + 1..s + 1 + t]);
        }
        Some(SeqBatch {
            x,
            y,
            batch_size: self.batch_size,
            num_steps: t,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = self.num_batches() - self.next;
        (left, Some(left))
    }
}

impl ExactSizeIterator for SeqBatches<'_> {}

/// One minibatch: inputs `x` and targets `y` (`x` shifted one token on), each `[B, T]`
/// row-major (batch-major, as d2l's iterators yield them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SeqBatch {
    /// Input token ids, `[B, T]` row-major.
    pub x: Vec<u32>,
    /// Target token ids, `[B, T]` row-major: `y[b, t]` is the token after `x[b, t]`.
    pub y: Vec<u32>,
    /// `B`.
    pub batch_size: usize,
    /// `T`.
    pub num_steps: usize,
}

impl SeqBatch {
    /// `[B, T]`.
    pub fn dims(&self) -> [usize; 2] {
        [self.batch_size, self.num_steps]
    }

    /// `x` and `y` as u32 tensors `[B, T]` on `device`.
    pub fn to_tensors(&self, device: &Device) -> Result<(Tensor, Tensor)> {
        Ok((
            Tensor::from_slice(&self.x, self.dims(), device)?,
            Tensor::from_slice(&self.y, self.dims(), device)?,
        ))
    }

    /// `x` transposed to `[T, B]` row-major: the time-major order of a recurrent layer's
    /// input (d2l's `X.T`).
    pub fn x_time_major(&self) -> Vec<u32> {
        transpose(&self.x, self.batch_size, self.num_steps)
    }

    /// `y` transposed to `[T, B]` row-major, so that it lines up with time-major outputs
    /// flattened to `[T·B, V]` (d2l's `Y.T.reshape(-1)`).
    pub fn y_time_major(&self) -> Vec<u32> {
        transpose(&self.y, self.batch_size, self.num_steps)
    }
}

/// `[rows, cols]` row-major to `[cols, rows]` row-major.
fn transpose(v: &[u32], rows: usize, cols: usize) -> Vec<u32> {
    (0..cols)
        .flat_map(|c| (0..rows).map(move |r| v[r * cols + c]))
        .collect()
}

#[cfg(test)]
mod tests;
