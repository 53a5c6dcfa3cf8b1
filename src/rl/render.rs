//! A picture of a [`CartPole`](super::CartPole) state, as Gymnasium's `rgb_array` frames draw
//! it: the track, the cart, the pole on its axle.

use crate::error::Result;
use crate::image::Image;
use crate::plot::Canvas;

/// A `width`×`height` RGB frame of the cart-pole state `(x, ẋ, θ, θ̇)`, captioned (e.g. with
/// the step number), in Gymnasium's proportions: the frame spans the track's 4.8 m, the cart is
/// 0.4 m × 0.24 m, the pole 1 m.
pub fn render_cartpole(
    state: [f64; 4],
    caption: &str,
    width: usize,
    height: usize,
) -> Result<Image> {
    let mut cv = Canvas::blank("render_cartpole", width, height)?;
    let (w, h) = (width as f64, height as f64);
    let scale = w / 4.8;
    let track_y = h * 0.8;
    let cart_x = w / 2.0 + state[0] * scale;
    let (cart_w, cart_h) = (0.4 * scale, 0.24 * scale);
    // The track.
    cv.line((0.0, track_y), (w, track_y), 1.5, [30, 30, 30]);
    // The cart, its top edge on the axle.
    let top = track_y - cart_h * 0.5;
    cv.rect(
        (cart_x - cart_w / 2.0) as i64,
        top as i64,
        (cart_x + cart_w / 2.0) as i64,
        (top + cart_h) as i64,
        [40, 40, 40],
    );
    // The pole: 2 · half-length 0.5 m, leaning by θ (positive: to the right).
    let pole = 1.0 * scale;
    let tip = (cart_x + pole * state[2].sin(), top - pole * state[2].cos());
    cv.line((cart_x, top), tip, 0.08 * scale, [202, 152, 101]);
    cv.dot((cart_x, top), 0.04 * scale, [129, 132, 203]);
    cv.text(caption, 6.0, 16.0, 12.0, [30, 30, 30], false);
    Ok(cv.into_image())
}
