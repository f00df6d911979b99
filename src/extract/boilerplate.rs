//! Boilerplate that only shows as such across pages: a block of text (not a heading) that
//! recurs on most pages of one site — a sidebar, a footer, a cookie notice the per-page rules
//! missed — is page furniture, not what the page is about.
//!
//! Use: [`SiteBoilerplate::observe`] every page of the site, then [`SiteBoilerplate::strip`]
//! each one. Offsets of the stripped page's structure are moved to match its new text.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::ops::Range;

use super::Extracted;

/// Fewest pages a site needs before anything counts as repeated.
pub const MIN_PAGES: usize = 3;

/// Counts of every block's text over the pages of one site.
#[derive(Debug, Default, Clone)]
pub struct SiteBoilerplate {
    seen: HashMap<u64, usize>,
    pages: usize,
}

/// A block's identity: its words, case and spacing aside.
fn fingerprint(block: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    for word in block.split_whitespace() {
        word.to_lowercase().hash(&mut hasher);
    }
    hasher.finish()
}

impl SiteBoilerplate {
    /// No pages seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Pages observed.
    pub fn pages(&self) -> usize {
        self.pages
    }

    /// Counts the blocks of one page of the site.
    pub fn observe(&mut self, page: &Extracted) {
        let unique: HashSet<u64> = page
            .blocks
            .iter()
            .map(|b| fingerprint(&page.text[b.clone()]))
            .collect();
        for f in unique {
            *self.seen.entry(f).or_default() += 1;
        }
        self.pages += 1;
    }

    /// Whether a block's text is on more than half of the site's pages (of at least
    /// [`MIN_PAGES`]).
    pub fn is_repeated(&self, block: &str) -> bool {
        self.pages >= MIN_PAGES
            && self
                .seen
                .get(&fingerprint(block))
                .is_some_and(|&n| n * 2 > self.pages)
    }

    /// Removes the page's repeated blocks; returns how many.
    pub fn strip(&self, page: &mut Extracted) -> usize {
        let text = &page.text;
        let mut cuts: Vec<Range<usize>> = Vec::new();
        for b in &page.blocks {
            if !self.is_repeated(&text[b.clone()]) {
                continue;
            }
            // Take the separator before the block with it (after it, for the first block).
            let before = text[..b.start].trim_end().len();
            let cut = if before > 0 {
                before..b.end
            } else {
                b.start..b.end + (text[b.end..].len() - text[b.end..].trim_start().len())
            };
            cuts.push(cut);
        }
        if cuts.is_empty() {
            return 0;
        }
        let removed = cuts.len();
        remove_ranges(page, &cuts);
        removed
    }
}

/// Removes sorted, disjoint byte ranges from the page's text and moves every offset of its
/// structure to match; sections and blocks left empty are dropped.
fn remove_ranges(page: &mut Extracted, cuts: &[Range<usize>]) {
    let mut text = String::with_capacity(page.text.len());
    let mut kept_until = 0;
    for cut in cuts {
        text.push_str(&page.text[kept_until..cut.start.max(kept_until)]);
        kept_until = kept_until.max(cut.end);
    }
    text.push_str(&page.text[kept_until..]);
    // Where an old offset lands: less every byte cut before it.
    let moved = |at: usize| -> usize {
        let mut shift = 0;
        for cut in cuts {
            if cut.start >= at {
                break;
            }
            shift += cut.end.min(at) - cut.start;
        }
        at - shift
    };
    for s in &mut page.structure.sections {
        s.start = moved(s.start);
        s.end = moved(s.end);
    }
    page.structure.sections.retain(|s| s.end > s.start);
    for p in &mut page.structure.pages {
        p.start = moved(p.start);
        p.end = moved(p.end);
    }
    page.structure.pages.retain(|p| p.end > p.start);
    page.blocks = page
        .blocks
        .iter()
        .filter(|b| !cuts.iter().any(|c| c.start <= b.start && b.end <= c.end))
        .map(|b| moved(b.start)..moved(b.end))
        .collect();
    page.text = text;
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::extract::{Deadline, ExtractLimits, html};

    fn page(body: &str) -> Extracted {
        let html = format!(
            "<html><body><h1>Page</h1><p>{body}</p><p>Report a bug</p><h2>More</h2><p>Copyright 2024</p></body></html>"
        );
        html::extract(
            html.as_bytes(),
            &ExtractLimits::default(),
            &Deadline::after(std::time::Duration::from_secs(5)),
        )
        .unwrap()
    }

    #[test]
    fn blocks_on_most_pages_go_headings_stay() {
        let mut pages: Vec<Extracted> = ["alpha", "beta", "gamma", "delta"]
            .iter()
            .map(|b| page(b))
            .collect();
        let mut site = SiteBoilerplate::new();
        for p in &pages {
            site.observe(p);
        }
        assert!(site.is_repeated("Report  a bug"));
        assert!(!site.is_repeated("alpha"));
        let p = &mut pages[0];
        assert_eq!(site.strip(p), 2);
        assert_eq!(p.text, "Page\n\nalpha\n\nMore");
        let labels: Vec<String> = p.structure.sections.iter().map(|s| s.label()).collect();
        assert_eq!(labels, ["Page", "Page › More"]);
        assert_eq!(&p.text[p.structure.sections[1].start..], "More");
        assert_eq!(p.structure.check(&p.text), Ok(()));
        assert_eq!(p.blocks.len(), 1);
        assert_eq!(&p.text[p.blocks[0].clone()], "alpha");

        let mut two = SiteBoilerplate::new();
        two.observe(&pages[1]);
        two.observe(&pages[2]);
        assert!(!two.is_repeated("Report a bug"), "two pages are not a site");
    }
}
