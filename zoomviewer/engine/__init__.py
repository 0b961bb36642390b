"""Pure compute, no Qt: geometry, photo files, resampling, the ensemble rules, Explain, the
networks (model/), the photo's Latent, the renderer (render/) and export."""
