//! Unit tests of `data::text`: token counts, the vocabulary, the split and both partitions.

use super::*;

fn tm() -> TimeMachine {
    TimeMachine::load_default().expect("the vendored text loads")
}

#[test]
fn preprocessing_matches_d2l() {
    assert_eq!(
        preprocess_line("  The Time-Machine, 1895!\r\n"),
        "the time machine"
    );
    assert_eq!(preprocess_line("I.  "), "i");
    assert_eq!(preprocess_line("42 -- é"), "");
    assert_eq!(preprocess("a\n\nB c\n"), vec!["a", "", "b c"]);
}

#[test]
fn time_machine_counts_and_vocab() {
    let tm = tm();
    assert_eq!(tm.corpus.len(), 170_580);
    assert_eq!(tm.vocab.len(), 28);
    assert_eq!(&tm.vocab.tokens()[..4], &["<unk>", " ", "e", "t"]);
    assert_eq!(tm.vocab.token_freqs()[0], (" ".to_string(), 29_927));
    assert_eq!(tm.vocab.token_freqs()[1], ("e".to_string(), 17_838));
    assert_eq!(tm.vocab.token_freqs()[26], ("q".to_string(), 95));
    assert_eq!(tm.vocab.index("<unk>"), 0);
    assert_eq!(tm.vocab.index(" "), 1);
    assert_eq!(tm.vocab.index("E"), Vocab::UNK);
    // The first line, "The Time Machine, by H. G. Wells [1898]", runs straight into the
    // next, "I" (lines are joined without a separator, as d2l does).
    let start = tm.vocab.decode(&tm.corpus[..30]).unwrap();
    assert_eq!(start, "the time machine by h g wellsi");
    let enc = tm.vocab.encode("time traveller");
    assert_eq!(tm.vocab.decode(&enc).unwrap(), "time traveller");
    assert!(tm.vocab.decode(&[28]).is_err());
}

#[test]
fn split_holds_out_the_last_tenth() {
    let tm = tm();
    let (train, val) = tm.split();
    assert_eq!((train.len(), val.len()), (153_522, 17_058));
    assert_eq!(val, &tm.corpus[153_522..]);
}

#[test]
fn vocab_ties_keep_first_occurrence_and_min_freq() {
    let v = Vocab::new(["b", "a", "c", "a", "b", "d"], 0, &["<pad>"]);
    assert_eq!(v.tokens(), &["<unk>", "<pad>", "b", "a", "c", "d"]);
    let v = Vocab::new(["b", "a", "c", "a", "b", "d"], 2, &[]);
    assert_eq!(v.tokens(), &["<unk>", "b", "a"]);
    assert_eq!(v.index("c"), 0);
    let v = Vocab::from_chars("xyx", 0, &["x"]);
    assert_eq!(v.tokens(), &["<unk>", "x", "y"]);
}

#[test]
fn sequential_batches_continue_rows() {
    let corpus: Vec<u32> = (0..1000).collect();
    for offset in [0, 3, 5] {
        let batches: Vec<_> = seq_data_iter_sequential_at(&corpus, 4, 5, offset)
            .unwrap()
            .collect();
        // (1000 - offset - 1) / 4 * 4 tokens in 4 rows, 5 columns per batch.
        let row_len = (999 - offset) / 4;
        assert_eq!(batches.len(), row_len / 5);
        for (i, b) in batches.iter().enumerate() {
            assert_eq!(b.dims(), [4, 5]);
            for r in 0..4 {
                for t in 0..5 {
                    let want = (offset + r * row_len + i * 5 + t) as u32;
                    assert_eq!(b.x[r * 5 + t], want);
                    assert_eq!(b.y[r * 5 + t], want + 1);
                }
            }
            if i > 0 {
                let prev = &batches[i - 1];
                for r in 0..4 {
                    assert_eq!(b.x[r * 5], prev.x[r * 5 + 4] + 1, "row {r} continues");
                }
            }
        }
    }
}

#[test]
fn time_machine_epoch_batches_are_shifted_by_one() {
    let tm = tm();
    let loader = SeqDataLoader::new(tm.train(), 32, 35, Partition::Sequential, 7).unwrap();
    let batches = loader.epoch(0);
    let offset = batches.offset();
    assert!(offset <= 35);
    let n = batches.num_batches();
    assert_eq!(n, (153_522 - offset - 1) / 32 / 35);
    let mut prev: Option<SeqBatch> = None;
    for (i, b) in batches.enumerate() {
        for r in 0..32 {
            let row = &b.x[r * 35..(r + 1) * 35];
            assert_eq!(&b.y[r * 35..r * 35 + 34], &row[1..]);
            let s = offset + r * ((153_522 - offset - 1) / 32) + i * 35;
            assert_eq!(row, &tm.train()[s..s + 35]);
            assert_eq!(b.y[r * 35 + 34], tm.train()[s + 35]);
            if let Some(p) = &prev {
                // The row picks up where the previous batch's targets left off.
                assert_eq!(p.y[r * 35 + 34], row[0]);
            }
        }
        prev = Some(b);
    }
    assert_eq!(loader.epoch(0).offset(), offset, "an epoch is reproducible");
}

#[test]
fn random_batches_cover_each_subsequence_at_most_once() {
    let corpus: Vec<u32> = (0..1000).collect();
    let mut seen_offsets = std::collections::BTreeSet::new();
    for epoch in 0..20 {
        let mut rng = epoch_rng(3, epoch);
        let batches = seq_data_iter_random(&corpus, 4, 7, &mut rng).unwrap();
        let offset = batches.offset();
        assert!(offset < 7);
        seen_offsets.insert(offset);
        let n = (999 - offset) / 7;
        assert_eq!(batches.num_batches(), n / 4);
        let mut seen = std::collections::HashSet::new();
        for b in batches {
            for r in 0..4 {
                let s = b.x[r * 7] as usize;
                assert_eq!(
                    (s - offset) % 7,
                    0,
                    "starts at a multiple of T after offset"
                );
                assert!(seen.insert(s), "subsequence at {s} used twice");
                for t in 0..7 {
                    assert_eq!(b.x[r * 7 + t], (s + t) as u32);
                    assert_eq!(b.y[r * 7 + t], (s + t + 1) as u32);
                }
            }
        }
        assert_eq!(seen.len(), n / 4 * 4);
    }
    assert!(
        seen_offsets.len() > 3,
        "offsets vary by epoch: {seen_offsets:?}"
    );
}

/// The numbers `benches/char_lm.py --check-rng` prints: the twin's SplitMix64 and
/// partitions give the same offsets and orders.
#[test]
fn draws_match_the_python_twin() {
    let mut rng = SplitMix64::new(0);
    assert_eq!(rng.next_u64(), 0xE220_A839_7B1D_CDAF);
    let corpus: Vec<u32> = (0..1000).collect();
    let seq: Vec<usize> = (0..4)
        .map(|e| {
            seq_data_iter_sequential(&corpus, 4, 35, &mut epoch_rng(42, e))
                .unwrap()
                .offset()
        })
        .collect();
    let mut rand = seq_data_iter_random(&corpus, 4, 35, &mut epoch_rng(42, 0)).unwrap();
    let first: Vec<usize> = (0..4).map(|b| rand.row_start(0, b).unwrap()).collect();
    let x0 = rand.next().unwrap().x[0];
    assert_eq!(seq, [2, 23, 16, 12]);
    assert_eq!(
        (rand.offset(), first, x0),
        (2, vec![352, 842, 562, 72], 352)
    );
    let tm = tm();
    let loader = SeqDataLoader::new(tm.train(), 32, 35, Partition::Sequential, 0).unwrap();
    let offsets: Vec<usize> = (0..4).map(|e| loader.epoch(e).offset()).collect();
    assert_eq!(offsets, [15, 19, 35, 6]);
}

#[test]
fn bad_geometry_is_an_error() {
    let corpus: Vec<u32> = (0..100).collect();
    let mut rng = SplitMix64::new(1);
    let msg = |r: Result<SeqBatches<'_>>| r.unwrap_err().to_string();
    assert!(msg(seq_data_iter_sequential(&corpus, 0, 5, &mut rng)).contains("batch_size 0"));
    assert!(msg(seq_data_iter_random(&corpus, 2, 0, &mut rng)).contains("num_steps 0"));
    // 10 × 9 + 9 + 1 = 100 fits; 10 × 10 + 10 + 1 does not.
    assert!(seq_data_iter_sequential(&corpus, 10, 9, &mut rng).is_ok());
    let e = msg(seq_data_iter_sequential(&corpus, 10, 10, &mut rng));
    assert!(e.contains("too short") && e.contains("111"), "{e}");
    // Random: 10 × 9 + 8 + 1 = 99 fits; 11 × 9 + 9 does not.
    assert!(seq_data_iter_random(&corpus, 10, 9, &mut rng).is_ok());
    assert!(msg(seq_data_iter_random(&corpus, 11, 9, &mut rng)).contains("too short"));
    assert!(seq_data_iter_sequential_at(&corpus, 1, 1, 99).is_err());
    assert!(seq_data_iter_sequential_at(&corpus, 1, 1, usize::MAX).is_err());
    assert!(SeqDataLoader::new(&corpus, usize::MAX, 2, Partition::Random, 0).is_err());
    assert!(TimeMachine::from_text("1895 -- 1946\n").is_err());
    let e = TimeMachine::load(Path::new("/nonexistent/tm.txt")).unwrap_err();
    assert!(e.to_string().contains("/nonexistent/tm.txt"), "{e}");
}

#[test]
fn random_partition_never_panics_on_short_corpora() {
    // Every geometry either errors or yields full batches inside the corpus.
    for len in 0..40usize {
        let corpus: Vec<u32> = (0..len as u32).collect();
        for b in 0..5 {
            for t in 0..6 {
                for seed in 0..4 {
                    let mut rng = SplitMix64::new(seed);
                    let random = seq_data_iter_random(&corpus, b, t, &mut rng);
                    let mut rng = SplitMix64::new(seed);
                    let sequential = seq_data_iter_sequential(&corpus, b, t, &mut rng);
                    for it in [random, sequential].into_iter().flatten() {
                        assert!(it.num_batches() >= 1);
                        let n = it.num_batches();
                        assert_eq!(it.map(|batch| assert_eq!(batch.y.len(), b * t)).count(), n);
                    }
                }
            }
        }
    }
}
