//! OpenAI's `o200k_base` encoding, kept only to count tokens: the vocabulary as one byte
//! arena with a hash index of ranks, and OpenAI's pre-tokenizer pattern. Built once, at the
//! first count of the process.
//!
//! Why not `tiktoken-rs`'s encoder, which the gateway used before: it keeps the vocabulary
//! three times (a `HashMap<Vec<u8>, Rank>`, its inverse, and a sorted copy), one heap
//! allocation per token in each, for decoding and special tokens a count never needs.
//! Measured on the release gateway, its first estimate took 105 ms and raised the resident
//! memory from 11.7 to 51.1 MB for the process's life; so any gateway that once estimated
//! usage (a provider that reports none, a cut stream, `/v1/messages/count_tokens`) held
//! 40 MB more, and the relay thread or request that needed the first count waited meanwhile,
//! with every stream on that thread (issue 18). Here the table and the pattern keep 5.6 MB
//! (jemalloc's count in the binary's test) and are built in 20-25 ms (release). `tiktoken-rs`
//! stays as a dev-dependency: the tests check that both count the same.
//!
//! The vocabulary is OpenAI's published file (`assets/o200k_base/`, with its provenance,
//! hash and license: one `base64(token) rank` line per token, ranks 0 to 199,997 in order).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::OnceLock;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use fancy_regex::Regex;

const VOCABULARY: &str = include_str!("../../assets/o200k_base/o200k_base.tiktoken");

/// OpenAI's pre-tokenizer for `o200k_base`: text is cut into pieces by this pattern and
/// each piece is encoded on its own (from `tiktoken`'s `openai_public.py`; it must match
/// exactly, or pieces and counts differ).
const PATTERN: &str = concat!(
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?",
    "|",
    r"\p{N}{1,3}",
    "|",
    r" ?[^\s\p{L}\p{N}]+[\r\n/]*",
    "|",
    r"\s*[\r\n]+",
    "|",
    r"\s+(?!\S)",
    "|",
    r"\s+",
);

/// No rank: a byte string that is no token.
const NONE: u32 = u32::MAX;

/// The longest run of bytes merged at once (see `Ranks::piece_tokens`).
const LONGEST_MERGE: usize = 64 * 1024;

/// The longest piece merged on arrays on the stack, without a heap (see
/// `Ranks::merged_tokens`); it must fit a `u8` offset.
const SHORT_MERGE: usize = 64;

/// The encoding, built at its first use.
pub(super) fn encoding() -> &'static Encoding {
    static ENCODING: OnceLock<Encoding> = OnceLock::new();
    ENCODING.get_or_init(Encoding::build)
}

pub(super) struct Encoding {
    ranks: Ranks,
    pieces: Regex,
}

impl Encoding {
    fn build() -> Encoding {
        Encoding {
            ranks: Ranks::parse(VOCABULARY),
            // Both are compiled in and checked by the tests: failing here is a build defect.
            pieces: Regex::new(PATTERN).expect("the o200k_base pattern compiles"),
        }
    }

    /// The tokens `text` encodes to (special tokens are not recognised: `encode_ordinary`).
    pub(super) fn count(&self, text: &str) -> u64 {
        let mut total = 0;
        let mut rest = text;
        'text: loop {
            let mut matched = 0;
            for piece in self.pieces.find_iter(rest) {
                let Ok(piece) = piece else {
                    // The matcher gave up: its backtracking stack holds a million entries, and
                    // `\s+(?!\S)` keeps one per character of a whitespace run (`tiktoken-rs`
                    // panicked there, a 500 for a message of a million spaces). Pieces are
                    // contiguous (every character matches some branch), so the run starts where
                    // the last piece ended: it is counted as one piece (the pattern would have
                    // left its last character to the next word, and cut it after its last line
                    // break: a token or two apart), and matching goes on after it.
                    let after = &rest[matched..];
                    let run = after.len() - after.trim_start().len();
                    if run == 0 {
                        // Not seen: no other branch backtracks per character. Estimated.
                        return total + after.len().div_ceil(4) as u64;
                    }
                    total += self.ranks.piece_tokens(&after.as_bytes()[..run]) as u64;
                    rest = &after[run..];
                    continue 'text;
                };
                matched = piece.end();
                total += self.ranks.piece_tokens(piece.as_str().as_bytes()) as u64;
            }
            return total;
        }
    }
}

/// The vocabulary: every token's bytes, in rank order, and an open-addressing index from
/// bytes to rank.
struct Ranks {
    bytes: Vec<u8>,
    /// Where each rank's bytes end in `bytes` (they start where the previous rank's end).
    ends: Vec<u32>,
    /// Rank + 1 per slot, 0 for an empty slot; a power of two long, at most half full.
    slots: Vec<u32>,
}

impl Ranks {
    fn parse(file: &str) -> Ranks {
        // Base64 takes 4 characters for 3 bytes, so half the file's length is room enough (the
        // part never written is never touched, so never resident).
        let mut bytes = Vec::with_capacity(file.len() / 2);
        let mut ends = Vec::with_capacity(200_000);
        for (line_rank, line) in file.lines().enumerate() {
            let (token, rank) = line.split_once(' ').expect("a `token rank` line");
            assert_eq!(
                rank.parse::<usize>().ok(),
                Some(line_rank),
                "ranks in order"
            );
            STANDARD
                .decode_vec(token, &mut bytes)
                .expect("a base64 token");
            ends.push(u32::try_from(bytes.len()).expect("a vocabulary under 4 GB"));
        }
        let mut ranks = Ranks {
            bytes,
            ends,
            slots: Vec::new(),
        };
        ranks.slots = vec![0; (ranks.ends.len() * 2).next_power_of_two()];
        for rank in 0..ranks.ends.len() as u32 {
            let mut slot = ranks.first_slot(ranks.token(rank));
            while ranks.slots[slot] != 0 {
                slot = (slot + 1) & (ranks.slots.len() - 1);
            }
            ranks.slots[slot] = rank + 1;
        }
        ranks
    }

    fn token(&self, rank: u32) -> &[u8] {
        let start = match rank {
            0 => 0,
            r => self.ends[r as usize - 1] as usize,
        };
        &self.bytes[start..self.ends[rank as usize] as usize]
    }

    /// FNV-1a, spread over the table by a Fibonacci multiply (tokens are short).
    fn first_slot(&self, bytes: &[u8]) -> usize {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for &b in bytes {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        let bits = self.slots.len().trailing_zeros();
        (hash.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> (64 - bits)) as usize
    }

    fn rank(&self, bytes: &[u8]) -> u32 {
        let mut slot = self.first_slot(bytes);
        loop {
            match self.slots[slot] {
                0 => return NONE,
                entry if self.token(entry - 1) == bytes => return entry - 1,
                _ => slot = (slot + 1) & (self.slots.len() - 1),
            }
        }
    }

    /// The tokens one piece encodes to: one when it is a token, else what merging its bytes
    /// makes. A piece longer than [`LONGEST_MERGE`] (a run of symbols or spaces with no break,
    /// tens of kilobytes long) is merged in parts of that size: merging keeps about 40 bytes
    /// per byte of the piece, and a request body of 32 MB must not make a gigabyte of it.
    /// No token spans a cut, so a cut can add a token or two: `!?` repeated over 200 KB makes
    /// 50,008 tokens in parts against 50,002 whole.
    fn piece_tokens(&self, piece: &[u8]) -> usize {
        // Every single byte is a token, so only longer pieces are merged.
        if self.rank(piece) != NONE {
            return 1;
        }
        piece
            .chunks(LONGEST_MERGE)
            .map(|part| self.merged_tokens(part))
            .sum()
    }

    /// Byte-pair merging as tiktoken does it: start from single bytes and merge the adjacent
    /// pair whose joined bytes have the lowest rank (the leftmost among equals) until no pair
    /// is a token. A short piece (most are) by scanning arrays on the stack; a longer one on
    /// a heap, so that it costs n log n, not n².
    fn merged_tokens(&self, piece: &[u8]) -> usize {
        match piece.len() {
            0 | 1 => piece.len(),
            2..=SHORT_MERGE => self.merged_short(piece),
            _ => self.merged_long(piece),
        }
    }

    /// The merge of a piece of at most [`SHORT_MERGE`] bytes: where each part starts, and the
    /// rank of each part joined with the next, in arrays; the lowest pair found by a scan.
    fn merged_short(&self, piece: &[u8]) -> usize {
        let mut parts = piece.len();
        // `starts[parts]` is the piece's end, so part `k` is `starts[k]..starts[k + 1]`.
        let mut starts = [0u8; SHORT_MERGE + 1];
        for (k, start) in starts.iter_mut().enumerate().take(parts + 1) {
            *start = k as u8;
        }
        let pair = |starts: &[u8], k: usize, parts: usize| {
            if k + 2 <= parts {
                self.rank(&piece[starts[k] as usize..starts[k + 2] as usize])
            } else {
                NONE
            }
        };
        let mut ranks = [NONE; SHORT_MERGE];
        for (k, rank) in ranks.iter_mut().enumerate().take(parts - 1) {
            *rank = pair(&starts, k, parts);
        }
        loop {
            let (rank, k) = (0..parts - 1)
                .map(|k| (ranks[k], k))
                .min()
                .unwrap_or((NONE, 0));
            if rank == NONE {
                return parts;
            }
            // Part k absorbs part k + 1: the starts and pairs after them move down one.
            starts.copy_within(k + 2..=parts, k + 1);
            if k + 3 <= parts {
                ranks.copy_within(k + 2..parts - 1, k + 1);
            }
            parts -= 1;
            ranks[k] = pair(&starts, k, parts);
            if k > 0 {
                ranks[k - 1] = pair(&starts, k - 1, parts);
            }
        }
    }

    /// The merge of a longer piece, on a heap.
    fn merged_long(&self, piece: &[u8]) -> usize {
        let n = piece.len();
        // Parts are identified by where they start; `next[i]` is where part `i` ends (the
        // next part's start) and `prev[i]` where the part before it starts.
        let mut next: Vec<usize> = (1..=n).collect();
        let mut prev: Vec<usize> = (0..n).map(|i| i.wrapping_sub(1)).collect();
        // The rank of part `i` joined with the part after it, NONE when that is no token
        // (or `i` no longer starts a part). Spans only grow, so a rank changes at most once
        // per merge and a heap entry whose rank no longer matches is stale.
        let mut pair_rank = vec![NONE; n];
        let mut heap = BinaryHeap::with_capacity(n);
        for i in 0..n - 1 {
            pair_rank[i] = self.rank(&piece[i..i + 2]);
            if pair_rank[i] != NONE {
                heap.push(Reverse((pair_rank[i], i)));
            }
        }
        let mut parts = n;
        while let Some(Reverse((rank, i))) = heap.pop() {
            if pair_rank[i] != rank {
                continue;
            }
            // Part i absorbs the part after it.
            let absorbed = next[i];
            let end = next[absorbed];
            next[i] = end;
            pair_rank[absorbed] = NONE;
            if end < n {
                prev[end] = i;
            }
            parts -= 1;
            pair_rank[i] = if end < n {
                self.rank(&piece[i..next[end]])
            } else {
                NONE
            };
            if pair_rank[i] != NONE {
                heap.push(Reverse((pair_rank[i], i)));
            }
            if i > 0 {
                let before = prev[i];
                pair_rank[before] = self.rank(&piece[before..end]);
                if pair_rank[before] != NONE {
                    heap.push(Reverse((pair_rank[before], before)));
                }
            }
        }
        parts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reference(text: &str) -> u64 {
        tiktoken_rs::o200k_base_singleton()
            .encode_ordinary(text)
            .len() as u64
    }

    #[test]
    fn every_token_of_the_vocabulary_is_found_at_its_own_rank() {
        let ranks = &encoding().ranks;
        assert_eq!(ranks.ends.len(), 199_998);
        for rank in 0..ranks.ends.len() as u32 {
            assert_eq!(ranks.rank(ranks.token(rank)), rank);
        }
        let hello = tiktoken_rs::o200k_base_singleton().encode_ordinary("Hello");
        assert_eq!(vec![ranks.rank(b"Hello")], hello);
        assert_eq!(ranks.rank(b"\xff\xfe\xfd\xfc not a token"), NONE);
    }

    #[test]
    fn counts_agree_with_tiktoken_on_varied_text() {
        let long_word = "supercalifragilistic".repeat(300);
        let symbols = "=+-*/<>".repeat(2_000);
        let spaces = format!("{}x{}\n\n\n", " ".repeat(5_000), "\t ".repeat(1_000));
        let samples = [
            "",
            "Hello, world!",
            "The quick brown fox jumps over the lazy dog. It's 12345678 o'clock; we'll see.",
            "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n",
            r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello."}]}"#,
            "日本語のテキストと中文文本，还有한국어 텍스트。",
            "Emoji: 👩‍👩‍👧‍👦 🇫🇷 ✨ and accents: déjà vu, naïve, Ærøskøbing, İstanbul",
            "ALLCAPS WORDS and MiXeD cAsE, I'LL WE'VE THEY'RE",
            "  leading and trailing spaces   \r\n\r\n  tabs\t\there ",
            "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk",
            &long_word,
            &symbols,
            &spaces,
        ];
        for text in samples {
            assert_eq!(
                encoding().count(text),
                reference(text),
                "{:?}",
                &text[..text.len().min(80)]
            );
        }
    }

    /// A run of a million spaces overflows the matcher's backtracking stack (`tiktoken-rs`
    /// panicked): the run is counted as one piece, as `tiktoken-rs` counts it where it can (a
    /// million spaces before a line break: 7,814 tokens), and the text after it is counted.
    #[test]
    fn a_megabyte_of_whitespace_is_counted_not_refused() {
        let spaces = " ".repeat(1_000_000);
        assert_eq!(encoding().count(&format!("{spaces}x")), 7_814);
        assert_eq!(
            encoding().count(&format!("{spaces}Hello, world!")),
            7_813 + reference(" Hello, world!")
        );
        assert_eq!(reference(&format!("{spaces}\n")), 7_814);
    }

    /// A run longer than `LONGEST_MERGE` is merged in parts, and counts within a token or
    /// two per cut of what merging it whole counts (tiktoken's count).
    #[test]
    fn a_long_run_of_symbols_is_merged_in_parts_within_a_few_tokens() {
        let ranks = &encoding().ranks;
        let text = "!?".repeat(100_001);
        let parts: usize = text
            .as_bytes()
            .chunks(LONGEST_MERGE)
            .map(|part| ranks.merged_tokens(part))
            .sum();
        assert_eq!(encoding().count(&text), parts as u64);
        let whole = reference(&text);
        assert_eq!(whole, ranks.merged_tokens(text.as_bytes()) as u64);
        assert!(
            parts as u64 > whole && parts as u64 <= whole + 8,
            "{parts} against {whole}"
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn counts_agree_with_tiktoken_on_any_text(text in any::<String>()) {
            prop_assert_eq!(encoding().count(&text), reference(&text));
        }

        #[test]
        fn short_pieces_merge_on_arrays_as_on_a_heap(
            text in "([a-z]{1,8}|[A-Z]{1,3}|[0-9]{1,3}|[ .,!?=*-]{1,4}|[éüß日本]){1,20}"
        ) {
            let ranks = &encoding().ranks;
            for piece in text.as_bytes().chunks(SHORT_MERGE) {
                prop_assert_eq!(ranks.merged_short(piece), ranks.merged_long(piece));
            }
        }

        #[test]
        fn counts_agree_with_tiktoken_on_wordlike_text(
            text in "([a-zA-Z]{1,12}|[0-9]{1,6}|[ \t\n]{1,3}|[.,;:!?'\"(){}<>/-]{1,3}|[éüßçøñ]|[日本語中文한국]){0,60}"
        ) {
            prop_assert_eq!(encoding().count(&text), reference(&text));
        }
    }
}
