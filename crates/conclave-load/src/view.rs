//! What a simulated participant shows, computed as the web client does (`web/grid.js`, in a
//! 1280x640 CSS-pixel meeting area at a device pixel ratio of 1), so that it sends the `view`
//! a real participant would: the first page of a grid (16 tiles, its own included) or a speaker
//! view (the last remote speaker on the stage, a one-row filmstrip below). Participants are in
//! join order; a new active speaker from a later page swaps places with the first page's least
//! recent speaker.

use std::collections::HashMap;

use conclave_proto::{ParticipantId, TileView};

/// The meeting area of a 1280x720 window without the toolbar.
const W: f64 = 1280.0;
const H: f64 = 640.0;
/// Space between tiles.
const GAP: f64 = 8.0;
/// Tiles on a grid page at this width, the participant's own included.
const GRID_PAGE: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    Grid,
    Speaker,
}

/// One participant's screen: who is where.
#[derive(Debug)]
pub struct Screen {
    layout: Layout,
    me: Option<ParticipantId>,
    /// Remote participants in page order.
    order: Vec<ParticipantId>,
    /// The remote participant on the stage in speaker view (the last remote speaker).
    stage: Option<ParticipantId>,
    speaker: Option<ParticipantId>,
    /// When each became the active speaker (a counter: only the order matters).
    spoke: HashMap<ParticipantId, u64>,
    turns: u64,
}

impl Screen {
    pub fn new(layout: Layout) -> Self {
        Self {
            layout,
            me: None,
            order: Vec::new(),
            stage: None,
            speaker: None,
            spoke: HashMap::new(),
            turns: 0,
        }
    }

    pub fn set_me(&mut self, id: ParticipantId) {
        self.order.retain(|x| *x != id);
        self.me = Some(id);
    }

    pub fn joined(&mut self, id: ParticipantId) {
        if Some(&id) != self.me.as_ref() && !self.order.contains(&id) {
            self.order.push(id);
        }
    }

    pub fn left(&mut self, id: &ParticipantId) {
        self.order.retain(|x| x != id);
        if self.stage.as_ref() == Some(id) {
            self.stage = None;
        }
        if self.speaker.as_ref() == Some(id) {
            self.speaker = None;
        }
    }

    pub fn set_speaker(&mut self, id: Option<ParticipantId>) {
        self.speaker = id.clone();
        let Some(id) = id else { return };
        self.turns += 1;
        self.spoke.insert(id.clone(), self.turns);
        if Some(&id) != self.me.as_ref() {
            self.stage = Some(id.clone());
            self.bring_to_first_page(&id);
        }
    }

    /// Remote places on the first page (the own tile takes one).
    fn remote_slots(&self) -> usize {
        match self.layout {
            Layout::Grid => GRID_PAGE - 1,
            Layout::Speaker => strip_page() - 1,
        }
    }

    fn bring_to_first_page(&mut self, id: &ParticipantId) {
        let slots = self.remote_slots().max(1);
        let Some(at) = self.order.iter().position(|x| x == id) else {
            return;
        };
        if at < slots {
            return;
        }
        // The last of the least recent speakers, as the web client picks.
        let mut swap = 0;
        let mut oldest = u64::MAX;
        for (i, x) in self.order.iter().take(slots).enumerate() {
            let t = self.spoke.get(x).copied().unwrap_or(0);
            if t <= oldest {
                oldest = t;
                swap = i;
            }
        }
        self.order.swap(swap, at);
    }

    /// The `view` message's tiles: most important first, with their drawn heights.
    pub fn view(&self) -> Vec<TileView> {
        let tile = |id: &ParticipantId, h: f64| TileView {
            participant_id: id.clone(),
            height: ((h / 10.0).round() * 10.0) as u32,
        };
        let mut out: Vec<TileView> = Vec::new();
        match self.layout {
            Layout::Grid => {
                let shown: Vec<&ParticipantId> =
                    self.order.iter().take(self.remote_slots()).collect();
                let h = grid_tile_height(shown.len() + 1);
                if let Some(s) = self.speaker.as_ref().filter(|s| shown.contains(s)) {
                    out.push(tile(s, h));
                }
                for id in shown {
                    if !out.iter().any(|t| t.participant_id == *id) {
                        out.push(tile(id, h));
                    }
                }
            }
            Layout::Speaker => {
                let stage = self
                    .stage
                    .as_ref()
                    .filter(|s| self.order.contains(s))
                    .or(self.order.first());
                let Some(stage) = stage else { return out };
                let (strip_h, stage_h) = speaker_heights();
                out.push(tile(stage, stage_h));
                for id in self
                    .order
                    .iter()
                    .filter(|x| *x != stage)
                    .take(self.remote_slots())
                {
                    out.push(tile(id, strip_h));
                }
            }
        }
        out
    }
}

/// Height of the tiles of a grid page of `n` tiles: 16:9 tiles as large as fit.
fn grid_tile_height(n: usize) -> f64 {
    let n = n.max(1);
    let mut best = 0.0f64;
    for cols in 1..=n {
        let rows = n.div_ceil(cols);
        let w = (W - GAP * (cols as f64 - 1.0)) / cols as f64;
        let h = (H - GAP * (rows as f64 - 1.0)) / rows as f64;
        best = best.max(w.min(h * 16.0 / 9.0));
    }
    (best * 9.0 / 16.0).floor()
}

/// Filmstrip and stage heights in speaker view.
fn speaker_heights() -> (f64, f64) {
    let strip_h = (H * 0.18).clamp(72.0, 160.0).round();
    let stage_h = H - strip_h - GAP;
    let stage_w = W.min(stage_h * 16.0 / 9.0);
    (strip_h, stage_h.min(stage_w * 9.0 / 16.0))
}

/// Tiles in one filmstrip row, the own tile included.
fn strip_page() -> usize {
    let (strip_h, _) = speaker_heights();
    let strip_w = (strip_h * 16.0 / 9.0).round();
    (((W + GAP) / (strip_w + GAP)).floor() as usize).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(i: usize) -> ParticipantId {
        ParticipantId(format!("p{i}"))
    }

    fn screen(layout: Layout, n: usize) -> Screen {
        let mut s = Screen::new(layout);
        for i in 0..n {
            s.joined(id(i));
        }
        s.set_me(id(0));
        s
    }

    #[test]
    fn grid_shows_the_first_page_in_small_tiles() {
        let s = screen(Layout::Grid, 50);
        let v = s.view();
        assert_eq!(v.len(), 15);
        assert_eq!(v[0].participant_id, id(1));
        assert!(v.iter().all(|t| t.height <= 270), "{v:?}");
        // Two people: large tiles.
        let v = screen(Layout::Grid, 2).view();
        assert_eq!(v.len(), 1);
        assert!(v[0].height > 270);
    }

    #[test]
    fn a_new_speaker_comes_to_the_first_page_and_first_in_the_view() {
        let mut s = screen(Layout::Grid, 50);
        s.set_speaker(Some(id(40)));
        let v = s.view();
        assert_eq!(v.len(), 15);
        assert_eq!(v[0].participant_id, id(40));
        // It took the last place of those who never spoke; the first stay.
        assert!(v.iter().any(|t| t.participant_id == id(1)));
        assert!(!v.iter().any(|t| t.participant_id == id(15)));
    }

    #[test]
    fn speaker_view_puts_the_speaker_on_a_large_stage() {
        let mut s = screen(Layout::Speaker, 50);
        s.set_speaker(Some(id(30)));
        let v = s.view();
        assert_eq!(v[0].participant_id, id(30));
        assert!(v[0].height > 270);
        assert!(v.len() > 2 && v.len() < 10, "{v:?}");
        assert!(v[1..].iter().all(|t| t.height <= 270));
    }
}
