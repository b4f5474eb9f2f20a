# %% [markdown]
# # Latent gradients: finding circuits between SAE latents
#
# A sparse autoencoder (SAE) turns a layer's activations into a few active **latents**. One latent
# at a time is a fine thing to study, but a model computes with many of them, layer after layer.
# If latents are the model's real units of computation, then a latent in one layer should be driven
# by only a **handful** of latents in the layers before it. Gradients let us check that, for a given
# input: the derivative of a later latent's activation with respect to an earlier one is a linear
# estimate of how much the first feeds the second.
#
# In this notebook you will compute four kinds of these gradients:
#
# | exercise | from | to | what it shows |
# |---|---|---|---|
# | 1 | | | `SparseTensor`: the bookkeeping that makes the rest fit in memory |
# | 2–3 | residual SAE latents, early layer | residual SAE latents, later layer | latent-to-latent circuits (e.g. a bigram) |
# | 4 | input tokens | residual SAE latents | which tokens a latent reads |
# | 5 | residual SAE latents | top logits | which latents push a prediction |
# | 6 (optional) | attention SAE latents | attention SAE latents, next layer | an induction circuit |
#
# **How to work through it.** Read each explanation, answer the *predict* questions before you run
# the cells, fill in the function (the body says `raise NotImplementedError()`), then run the check
# cell under it. A check compares your function with a reference solution on the same model and
# says what differs, and often why. Hints are in collapsible notes: open them when you are stuck.
#
# **Which model?** The first code cell loads a *world*: a model with its SAEs, and the layers and
# prompts each exercise uses. With internet access it is GPT-2 small with the SAEs from the
# original research; offline it is a small model trained for this course, which shows the same
# phenomena on its own layers and latent ids. Set `LATENT_GRADIENTS_WORLD=toy` (or `gpt2`) to choose.
# Expected outputs are given for GPT-2 (labelled so) and printed, measured, for the toy world.

# %%
import einops
import torch as t
from jaxtyping import Float, Int
from sae_lens import SAE, HookedSAETransformer
from torch import Tensor
from transformer_lens.hook_points import HookPoint
from transformer_lens.utilities import get_act_name, test_prompt

import tests
from part_utils import (
    _get_hook_layer,
    display_dashboard,
    induction_latents,
    induction_mass_ratio,
    load_world,
    memory_report,
    plot_induction,
    plot_induction_filtered,
    plot_latent_to_latent,
    plot_latent_to_logit,
    plot_token_to_latent,
    show_attention_patterns,
)
from part_utils.observations import show_observations

world = load_world()  # "auto": GPT-2 when Hugging Face can be reached, else the offline toy world
model, saes, attn_saes = world.model, world.saes, world.attn_saes
device = model.cfg.device
exercises = world.exercises
print(memory_report(device))

# %% [markdown]
# ## What a latent gradient is
#
# Take one input. Let $x$ be the activations of the active latents of an SAE at layer $L_1$, and
# $y$ those of an SAE at a later layer $L_2$. The path from $x$ to $y$ is: decode $x$ into the
# residual stream at $L_1$, run the model's blocks $L_1 \dots L_2 - 1$, encode the result with the
# second SAE. That path is a function $y = f(x)$, and its Jacobian $J_{ij} = \partial y_i / \partial x_j$
# says, to first order, how much earlier latent $j$ contributes to later latent $i$.
#
# `torch.func.jacrev(f)` returns a function that computes that Jacobian by reverse-mode
# autodiff: one backward pass per output, all of them vectorised together.
#
# Two details shape the code:
#
# - **Only active latents.** An SAE has tens of thousands of latents, and at any token only a few
#   dozen are active. A Jacobian over every latent, at every position, would have billions of
#   entries. So we differentiate with respect to the *values of the active latents* only.
# - **True versus reconstructed.** In $f$, the later SAE sees the earlier SAE's *reconstruction*,
#   not the real residual stream. If the earlier SAE reconstructs badly, $f$ describes a slightly
#   different model. We therefore also compute the later latents' *true* activations and compare.

# %% [markdown]
# ## Exercise 1: `SparseTensor`
#
# > **Difficulty** 🔴🔴⚪⚪⚪ · **Importance** 🔵⚪⚪⚪⚪ · about 10–15 minutes (or read the solution and move on)
#
# Forward passes need dense tensors; Jacobians need the sparse form. `SparseTensor` holds both:
#
# - `dense`: the full tensor, zeros included, shape `(n1, ..., nk)`;
# - `sparse`: a tuple `(values, indices, shape)`: the positive entries, shape `(n_nonzero,)`; where
#   they are, shape `(n_nonzero, k)`, one row per entry; and the dense shape as a tuple of ints.
#
# Fill in `from_dense` (keep only positive entries: activations are never negative, and a zero
# latent is an inactive one) and `from_sparse` (scatter the values back into a tensor of zeros).
# `values[i]` must be the entry at `indices[i]`.
#
# *Before you run it:* for a 1-D tensor of 10,000 entries with 10 nonzero, what are the shapes of
# `values` and `indices`? And for a `(1, 8, 24576)` tensor of latent activations with one nonzero?
#
# <details><summary>Hint</summary>
#
# `torch.argwhere(mask)` (or `mask.nonzero()`) returns the `(n_nonzero, k)` indices in row-major
# order, the same order in which `dense[mask]` returns the values. To scatter back,
# `dense[indices.unbind(-1)] = values` indexes with one index tensor per dimension. Create the
# zeros with the values' dtype and device.
# </details>

# %% [exercise exercise=sparse_tensor]
class SparseTensor:
    """
    A non-negative tensor in two forms at once:
        dense:  the full tensor of shape (n1, ..., nk), zeros included.
        sparse: (values, indices, shape): the positive values, shape (n_nonzero,); their positions,
                shape (n_nonzero, k), in row-major order; and the dense tensor's shape.
    """

    sparse: tuple[Tensor, Tensor, tuple[int, ...]]
    dense: Tensor

    def __init__(self, sparse: tuple[Tensor, Tensor, tuple[int, ...]], dense: Tensor):
        self.sparse = sparse
        self.dense = dense

    @classmethod
    def from_dense(cls, dense: Tensor) -> "SparseTensor":
        """Creates a SparseTensor from a dense tensor, keeping its positive entries."""
        ### BEGIN SOLUTION
        is_active = dense > 0
        return cls((dense[is_active], t.argwhere(is_active), tuple(dense.shape)), dense)
        ### END SOLUTION

    @classmethod
    def from_sparse(cls, sparse: tuple[Tensor, Tensor, tuple[int, ...]]) -> "SparseTensor":
        """Creates a SparseTensor from (values, indices, shape), scattering the values into a dense tensor."""
        ### BEGIN SOLUTION
        values, indices, shape = sparse
        dense = t.zeros(shape, dtype=values.dtype, device=values.device)
        dense[indices.unbind(-1)] = values
        return cls(sparse, dense)
        ### END SOLUTION

    @property
    def values(self) -> Tensor:
        return self.sparse[0].reshape(-1)

    @property
    def indices(self) -> Tensor:
        # A 1-D tensor's indices come back flat, (n_nonzero,); higher ranks keep (n_nonzero, k).
        indices = self.sparse[1]
        return indices.squeeze(-1) if indices.shape[-1] == 1 else indices

    @property
    def shape(self) -> tuple[int, ...]:
        return self.sparse[2]


# %% [check]
tests.test_sparse_tensor(SparseTensor)

# %% [grader exercise=sparse_tensor id=sparse_tensor-from_dense points=1]
tests.test_sparse_tensor(SparseTensor, part="from_dense")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("sparse_tensor", "from_dense", SparseTensor)
### END HIDDEN TESTS

# %% [grader exercise=sparse_tensor id=sparse_tensor-from_sparse points=1]
tests.test_sparse_tensor(SparseTensor, part="from_sparse")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("sparse_tensor", "from_sparse", SparseTensor)
### END HIDDEN TESTS

# %% [markdown]
# A quick look at what you built, on a small example:

# %%
example = t.tensor([[0.0, 1.5, 0.0], [0.0, 0.0, 0.2]])
example_sparse = SparseTensor.from_dense(example)
print("values: ", example_sparse.values)
print("indices:", example_sparse.indices.tolist())
print("round trip equal:", t.equal(SparseTensor.from_sparse(example_sparse.sparse).dense, example))

# %% [markdown]
# ## Exercise 2: `latent_acts_to_later_latent_acts`
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 10–20 minutes
#
# This is the function $f$ from above. It takes the earlier SAE's activations in sparse form
# (three arguments: values, indices, shape) and returns the later SAE's activations **twice**:
#
# - the values of the active later latents: this is what `jacrev` differentiates;
# - the dense later activations, in a one-element tuple: an *auxiliary* output. With
#   `jacrev(f, has_aux=True)`, `f` returns `(output, aux)` and the Jacobian function returns
#   `(jacobian, aux)`, so you get the Jacobian and the activations from a single call.
#
# Useful pieces: `sae.decode(latents)` and `sae.encode(activations)`; `model(x, start_at_layer=a,
# stop_at_layer=b)` runs blocks `a, ..., b-1` on a residual stream `x`; `_get_hook_layer(sae)` is
# the block an SAE reads (3 for `blocks.3.hook_resid_pre`, the *input* of block 3).
#
# *Before you run it:* if the earlier SAE is at layer 0 and the later one at layer 3, which blocks
# does the residual stream go through?
#
# <details><summary>Hint</summary>
#
# Dense latents from the sparse arguments with `SparseTensor.from_sparse`; decode; run the blocks
# from `_get_hook_layer(sae_from)` up to (not including) `_get_hook_layer(sae_to)`; encode; then
# `SparseTensor.from_dense` gives you both the values and the dense tensor to return.
# </details>

# %% [exercise exercise=latent_to_latent]
def latent_acts_to_later_latent_acts(
    latent_acts_nonzero: Float[Tensor, " nonzero_acts"],
    latent_acts_nonzero_inds: Int[Tensor, "nonzero_acts n_indices"],
    latent_acts_shape: tuple[int, ...],
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, tuple[Tensor]]:
    """
    Maps the earlier SAE's latent activations (in sparse form) to the later SAE's latent activations,
    along the path: earlier SAE decoder -> the model's blocks in between -> later SAE encoder.

    Returns the later activations twice: as the values of the active latents (what `jacrev`
    differentiates), and as a dense tensor in a length-1 tuple (auxiliary output, not differentiated).
    """
    ### BEGIN SOLUTION
    latent_acts = SparseTensor.from_sparse((latent_acts_nonzero, latent_acts_nonzero_inds, latent_acts_shape)).dense
    resid_from = sae_from.decode(latent_acts)
    resid_to = model(resid_from, start_at_layer=_get_hook_layer(sae_from), stop_at_layer=_get_hook_layer(sae_to))
    latent_acts_next_recon = SparseTensor.from_dense(sae_to.encode(resid_to))
    return latent_acts_next_recon.sparse[0], (latent_acts_next_recon.dense,)
    ### END SOLUTION


# %% [markdown]
# ## Exercise 3: `latent_to_latent_gradients`
#
# > **Difficulty** 🔴🔴🔴🔴⚪ · **Importance** 🔵🔵🔵⚪⚪ · about 20–40 minutes
#
# Now put it together. Your function should:
#
# 1. Compute the **true** activations of both SAEs, without gradients, in one run:
#    `model.run_with_cache_with_saes(tokens, saes=[sae_from, sae_to], use_error_term=True, ...)`.
#    With `use_error_term=True` each spliced-in SAE adds back its own error, so the model's
#    activations stay exactly the clean ones while the cache records each SAE's latents under
#    `f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"`. Keep the batch dimension
#    (`remove_batch_dim=False`), and stop the run after the later SAE's layer.
# 2. Wrap exercise 2's function: `t.func.jacrev(latent_acts_to_later_latent_acts, has_aux=True)`.
# 3. Call the wrapped function with the earlier activations' sparse form (`*latent_acts_prev.sparse`)
#    and the SAEs and model.
# 4. Return the Jacobian, and the earlier, later and reconstructed-later activations as SparseTensors.
#
# The Jacobian's rows are the later latents active in the *reconstructed* run, its columns the
# earlier active latents.
#
# *Before you run it:* do you expect most entries of the Jacobian to be zero? Which pairs of
# positions can have a nonzero gradient at all, given that attention only looks backwards? Do you
# expect more gradient between latents at the **same** position, or across positions?
#
# <details><summary>Hint: memory</summary>
#
# If you run out of memory, you are probably differentiating with respect to a dense tensor: the
# Jacobian then has a column for every latent at every position. Pass the sparse values.
# </details>
#
# <details><summary>Hint: state</summary>
#
# Leave the model and SAEs as you found them: no hooks, no attached SAEs, and each SAE's own
# `use_error_term` unchanged. Passing `use_error_term=True` to `run_with_cache_with_saes` (rather
# than setting it on the SAE) does that for you.
# </details>

# %% [exercise exercise=latent_to_latent]
def latent_to_latent_gradients(
    tokens: Float[Tensor, "batch seq"],
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, SparseTensor, SparseTensor, SparseTensor]:
    """
    The gradients between every active latent of `sae_from` and every active latent of `sae_to`.

    Returns:
        latent_latent_gradients: (n_active_next_recon, n_active_prev): d(later latent) / d(earlier latent)
        latent_acts_prev:        the earlier SAE's latent activations on `tokens`
        latent_acts_next:        the later SAE's true latent activations on `tokens`
        latent_acts_next_recon:  the later SAE's activations computed from the earlier SAE's reconstruction
    """
    ### BEGIN SOLUTION
    acts_prev_name = f"{sae_from.cfg.metadata.hook_name}.hook_sae_acts_post"
    acts_next_name = f"{sae_to.cfg.metadata.hook_name}.hook_sae_acts_post"
    with t.no_grad():
        _, cache = model.run_with_cache_with_saes(
            tokens,
            saes=[sae_from, sae_to],
            use_error_term=True,
            names_filter=[acts_prev_name, acts_next_name],
            stop_at_layer=_get_hook_layer(sae_to) + 1,
            remove_batch_dim=False,
        )
    latent_acts_prev = SparseTensor.from_dense(cache[acts_prev_name])
    latent_acts_next = SparseTensor.from_dense(cache[acts_next_name])

    jacobian_fn = t.func.jacrev(latent_acts_to_later_latent_acts, has_aux=True)
    latent_latent_gradients, (latent_acts_next_recon_dense,) = jacobian_fn(*latent_acts_prev.sparse, sae_from, sae_to, model)
    latent_acts_next_recon = SparseTensor.from_dense(latent_acts_next_recon_dense)
    return latent_latent_gradients, latent_acts_prev, latent_acts_next, latent_acts_next_recon
    ### END SOLUTION


# %% [check]
tests.test_latent_to_latent_gradients(latent_to_latent_gradients, model, saes)

# %% [grader exercise=latent_to_latent id=latent_to_latent-activations points=1]
tests.test_latent_to_latent_gradients(latent_to_latent_gradients, model, saes, part="activations")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("latent_to_latent", "activations", latent_to_latent_gradients)
### END HIDDEN TESTS

# %% [grader exercise=latent_to_latent id=latent_to_latent-gradients points=2]
tests.test_latent_to_latent_gradients(latent_to_latent_gradients, model, saes, part="gradients")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("latent_to_latent", "gradients", latent_to_latent_gradients)
### END HIDDEN TESTS

# %% [markdown]
# Now run it on this world's prompt and look at the result. First a sanity check of the
# reconstruction: if the earlier SAE were perfect, the same later latents would be active in the
# true and the reconstructed runs.

# %%
settings = exercises.latent_to_latent
tokens = model.to_tokens(settings.prompt)
str_toks = model.to_str_tokens(settings.prompt)
gradients, latent_acts_prev, latent_acts_next, latent_acts_next_recon = latent_to_latent_gradients(
    tokens, saes[settings.layer_from], saes[settings.layer_to], model
)
true_active = {tuple(x) for x in latent_acts_next.indices.tolist()}
recon_active = {tuple(x) for x in latent_acts_next_recon.indices.tolist()}
print(f"active later latents, true run:          {len(true_active)}")
print(f"active later latents, reconstructed run: {len(recon_active)}")
print(f"active in one run but not the other:     {len(true_active ^ recon_active)}")
print(f"nonzero gradients: {(gradients != 0).float().mean():.1%} of {gradients.numel()} entries")
plot_latent_to_latent(gradients, latent_acts_prev, latent_acts_next_recon, str_toks, settings.layer_from, settings.layer_to).show()

# %% [markdown]
# ### What to look for
#
# **GPT-2 small** (layers 0 → 3, prompt "The Eiffel tower is in Paris"): 181 later latents are
# active in the true run and 179 in the reconstructed one, with 8 active in only one of them. Most
# large gradients connect latents at the **same** position, often what looks like the same
# feature seen again a few layers later: F0.9449 on " Paris" feeds F3.385 on " Paris". Cross-position
# gradients are rare. One stands out: F0.16911 on " E" drives F3.15266 on "iff", a circuit for
# words that begin with the token " E" (GPT-2 splits " Eiffel" into " E", "iff", "el").
#
# **This world** (measured when the world was built):

# %%
show_observations(world, "latent_to_latent")

# %% [markdown]
# Look the latents up. Online with GPT-2 this opens Neuronpedia's dashboard; offline you get a
# card computed here: the contexts where the latent fires most, and the tokens its decoder direction
# pushes up and down through the unembedding.

# %%
for sae_id, latent_idx in world.facts.get("latent_to_latent", {}).get("dashboards", []):
    display_dashboard(sae_id=sae_id, latent_idx=latent_idx)

# %% [markdown]
# ## Exercise 4: token-to-latent gradients
#
# > **Difficulty** 🔴🔴🔴🔴⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 30–40 minutes
#
# Which input tokens does a latent read? Tokens are not numbers we can differentiate with respect
# to, so we invent one: multiply the input to block 0 (each position's token embedding **plus**
# its positional embedding) by a scale $s_p$ per position, and differentiate the latents with
# respect to $s$ at $s = (1, \dots, 1)$. No real model scales its embeddings like this; it is a
# convenient probe of which positions matter.
#
# Write `tokens_to_latent_acts(token_scales, tokens, sae, model)`, returning the active latents'
# values and `(dense,)` like before, and `token_to_latent_gradients(tokens, sae, model)`, returning
# the gradients shaped `(batch, seq, n_active_latents)` and the latents as a `SparseTensor`.
#
# *Before you run it:* which rows (tokens) can have a nonzero gradient for a latent active at
# position 4? What would you expect for the " E" → "iff" latent you saw above?
#
# <details><summary>Hint</summary>
#
# `model(tokens, stop_at_layer=0)` returns the summed embeddings, the input of block 0. Scale them
# (`einops.einsum` or broadcasting `token_scales[..., None]`), continue with
# `model(x, start_at_layer=0, stop_at_layer=_get_hook_layer(sae))`, encode. `jacrev` returns
# `(n_active, batch, seq)`: rearrange it.
# </details>

# %% [exercise exercise=token_to_latent]
def tokens_to_latent_acts(
    token_scales: Float[Tensor, "batch seq"],
    tokens: Int[Tensor, "batch seq"],
    sae: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, tuple[Tensor]]:
    """
    Scales each position's embedding (token plus positional embedding, after they are summed) by
    `token_scales`, runs the model up to the SAE's layer and returns the SAE's latents.

    Returns:
        latent_acts_sparse: the values of the active latents
        latent_acts_dense:  all latent activations as a dense tensor, in a length-1 tuple
    """
    ### BEGIN SOLUTION
    embeddings = model(tokens, stop_at_layer=0)
    scaled = einops.einsum(embeddings, token_scales, "batch seq d_model, batch seq -> batch seq d_model")
    resid = model(scaled, start_at_layer=0, stop_at_layer=_get_hook_layer(sae))
    sae_latents = SparseTensor.from_dense(sae.encode(resid))
    return sae_latents.sparse[0], (sae_latents.dense,)
    ### END SOLUTION


def token_to_latent_gradients(
    tokens: Float[Tensor, "batch seq"],
    sae: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, SparseTensor]:
    """
    The gradient of every active latent of `sae` with respect to every token's embedding scale, at scale 1.

    Returns:
        token_latent_grads: (batch, seq, n_active_latents)
        latent_acts:        the SAE's latent activations
    """
    ### BEGIN SOLUTION
    token_scales = t.ones(tokens.shape, device=model.cfg.device)
    jacobian, (latent_acts_dense,) = t.func.jacrev(tokens_to_latent_acts, has_aux=True)(token_scales, tokens, sae, model)
    token_latent_grads = einops.rearrange(jacobian, "n_active batch seq -> batch seq n_active")
    return token_latent_grads, SparseTensor.from_dense(latent_acts_dense)
    ### END SOLUTION


# %% [check]
tests.test_token_to_latent_gradients(token_to_latent_gradients, model, saes)

# %% [grader exercise=token_to_latent id=token_to_latent-activations points=1]
tests.test_token_to_latent_gradients(token_to_latent_gradients, model, saes, part="activations")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("token_to_latent", "activations", token_to_latent_gradients)
### END HIDDEN TESTS

# %% [grader exercise=token_to_latent id=token_to_latent-gradients points=1]
tests.test_token_to_latent_gradients(token_to_latent_gradients, model, saes, part="gradients")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("token_to_latent", "gradients", token_to_latent_gradients)
### END HIDDEN TESTS

# %%
settings = exercises.token_to_latent
tokens = model.to_tokens(settings.prompt)
str_toks = model.to_str_tokens(settings.prompt)
token_latent_grads, latent_acts = token_to_latent_gradients(tokens, saes[settings.layer], model)
plot_token_to_latent(token_latent_grads, latent_acts, str_toks, settings.layer).show()

# %% [markdown]
# ### What to look for
#
# The matrix is lower-triangular in positions: a latent at position $p$ can only depend on tokens
# at positions $\le p$. Most latents depend mostly on their own token.
#
# **GPT-2 small** (layer 3): the " E" token has a clear gradient to F3.15266, the latent on "iff"
# from the previous exercise, which confirms the bigram circuit from the token side.
#
# **This world:**

# %%
show_observations(world, "token_to_latent")

# %% [markdown]
# ## Exercise 5: latent-to-logit gradients
#
# > **Difficulty** 🔴🔴🔴🔴⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 30–45 minutes
#
# Latents are representations when you look back at the input, and *actions* when you look forward
# at the output. This exercise looks forward: the gradient of the final position's logits with
# respect to the active latents of one residual SAE. There are tens of thousands of logits, so we
# keep only the `k` highest ones of the clean run.
#
# Write `latent_acts_to_logits(...)`: decode the sparse latents, run the rest of the model from the
# SAE's layer, and return the final position's logits of `token_ids` (and all its logits as the
# auxiliary output). Then `latent_to_logit_gradients(tokens, sae, model, k)`, which returns
# `(gradients (k, n_active), logits, logits_recon, token_ids, latent_acts)`; `logits` are the
# **true** logits at the final position, and `token_ids` their top k as a Python list.
#
# Expect these gradients to be less sparse than the last two kinds: the SAE's training penalises
# dense *activations*, but nothing penalises a latent for nudging many logits.
#
# *Before you run it:* the prompt ends "...is in the city of". Which latents would you expect to
# push " Paris" up, and what else might they push up with it?
#
# <details><summary>Hint</summary>
#
# Run the model once with the SAE spliced in (`use_error_term=True`) to get both the true logits and
# the latents from the cache. `model(resid, start_at_layer=layer)` runs to the logits.
# `logits.topk(k).indices.tolist()` gives the token ids, highest first.
# </details>

# %% [exercise exercise=latent_to_logit]
def latent_acts_to_logits(
    latent_acts_nonzero: Float[Tensor, " nonzero_acts"],
    latent_acts_nonzero_inds: Int[Tensor, "nonzero_acts n_indices"],
    latent_acts_shape: tuple[int, ...],
    sae: SAE,
    model: HookedSAETransformer,
    token_ids: list[int] | None = None,
) -> tuple[Tensor, tuple[Tensor]]:
    """
    The final position's logits, computed from the SAE's reconstruction of the residual stream.

    Returns the logits of `token_ids` (what `jacrev` differentiates) and, in a length-1 tuple, all
    of the final position's logits.
    """
    ### BEGIN SOLUTION
    latent_acts = SparseTensor.from_sparse((latent_acts_nonzero, latent_acts_nonzero_inds, latent_acts_shape)).dense
    resid = sae.decode(latent_acts)
    logits_recon = model(resid, start_at_layer=_get_hook_layer(sae))[0, -1]
    return logits_recon[token_ids], (logits_recon,)
    ### END SOLUTION


def latent_to_logit_gradients(
    tokens: Float[Tensor, "batch seq"],
    sae: SAE,
    model: HookedSAETransformer,
    k: int | None = None,
) -> tuple[Tensor, Tensor, Tensor, list[int] | None, SparseTensor]:
    """
    The gradients between the SAE's active latents and the model's top-k logits at the final position.

    Returns:
        latent_logit_gradients: (k, n_active_latents)
        logits:                 the model's true logits at the final position, (d_vocab,)
        logits_recon:           the final position's logits computed from the SAE's reconstruction
        token_ids:              the k token ids with the highest true logits, highest first
        latent_acts:            the SAE's latent activations
    """
    assert tokens.shape[0] == 1, "Only supports batch size 1 for now"
    ### BEGIN SOLUTION
    acts_name = f"{sae.cfg.metadata.hook_name}.hook_sae_acts_post"
    with t.no_grad():
        logits, cache = model.run_with_cache_with_saes(
            tokens, saes=[sae], use_error_term=True, names_filter=[acts_name], remove_batch_dim=False
        )
    logits = logits[0, -1]
    latent_acts = SparseTensor.from_dense(cache[acts_name])
    token_ids = None if k is None else logits.topk(k).indices.tolist()
    latent_logit_gradients, (logits_recon,) = t.func.jacrev(latent_acts_to_logits, has_aux=True)(
        *latent_acts.sparse, sae, model, token_ids
    )
    return latent_logit_gradients, logits, logits_recon, token_ids, latent_acts
    ### END SOLUTION


# %% [check]
tests.test_latent_to_logit_gradients(latent_to_logit_gradients, model, saes)

# %% [grader exercise=latent_to_logit id=latent_to_logit-activations points=1]
tests.test_latent_to_logit_gradients(latent_to_logit_gradients, model, saes, part="activations")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("latent_to_logit", "activations", latent_to_logit_gradients)
### END HIDDEN TESTS

# %% [grader exercise=latent_to_logit id=latent_to_logit-gradients points=1]
tests.test_latent_to_logit_gradients(latent_to_logit_gradients, model, saes, part="gradients")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("latent_to_logit", "gradients", latent_to_logit_gradients)
### END HIDDEN TESTS

# %% [markdown]
# First, how well does the model do on the prompt, with and without the SAE spliced in (its
# reconstruction replacing the residual stream)?

# %%
settings = exercises.latent_to_logit
tokens = model.to_tokens(settings.prompt)
str_toks = model.to_str_tokens(settings.prompt)
test_prompt(settings.prompt, settings.answer, model, top_k=5)
with model.saes(saes=[saes[settings.layer]]):
    test_prompt(settings.prompt, settings.answer, model, top_k=5)

# %%
latent_logit_grads, logits, logits_recon, token_ids, latent_acts = latent_to_logit_gradients(
    tokens, saes[settings.layer], model, k=settings.k
)
plot_latent_to_logit(latent_logit_grads, latent_acts, token_ids, str_toks, settings.layer, model).show()

# %% [markdown]
# ### What to look for
#
# Latents are sorted by their gradient on the top prediction, most positive first.
#
# **GPT-2 small** (layer 9, k = 25): " Paris" is the top prediction (logit 14.83, probability
# 4.8%, ahead of " London" and " Amsterdam"); with the SAE spliced in it drops to rank 9. F9.22250
# pushes " Paris" far more than any other top prediction; it fires mostly on French text.
# F9.5879 pushes German cities (" Berlin", " Hamburg", " Cologne") and fires mostly on German text,
# or English text about Germany.
#
# **This world:**

# %%
show_observations(world, "latent_to_logit")
# The latent whose gradient on the top prediction is largest, in this world, with this prompt:
top_latent = latent_acts.indices[latent_logit_grads[0].argmax()][-1].item()
print(f"Latent {top_latent} pushes {model.to_single_str_token(token_ids[0])!r} up the most.")
display_dashboard(sae_id=saes[settings.layer].cfg.metadata.hook_name, latent_idx=top_latent)
for sae_id, latent_idx in world.facts.get("latent_to_logit", {}).get("dashboards", []):
    display_dashboard(sae_id=sae_id, latent_idx=latent_idx)

# %% [markdown]
# ## Exercise 6 (optional): an induction circuit in attention SAEs
#
# > **Difficulty** 🔴🔴🔴🔴🔴 · **Importance** 🔵🔵🔵⚪⚪ · about 30–60 minutes
#
# The same method works for SAEs trained on other activations. Here both SAEs read an attention
# layer's `z` (each head's weighted sum of values, heads concatenated: `hook_z`). We look for an
# **induction circuit**: in a sequence `... A B ... A`, an induction head at the second `A` predicts
# `B`, helped by a previous-token head that, at the first `B`, wrote down "the token before me was A".
#
# First, the attention patterns on a random sequence repeated twice. Find the previous-token head
# (each token attends to the one before it) and the induction head (in the second half, each token
# attends to the token *after* its earlier copy):

# %%
induction = exercises.attention
rep_tokens = induction.repeated_tokens(model, seed=0)
show_attention_patterns(model, rep_tokens, [*induction.prev_token_heads, *induction.induction_heads])

# %% [markdown]
# Now write `latent_acts_to_later_latent_acts_attn`. The earlier SAE's reconstruction must
# **replace** `z` in the earlier layer (a forward hook on its `hook_z` that returns the
# reconstruction), the model runs from the clean residual stream at the start of the earlier layer,
# and a second hook records `z` of the later layer, which the later SAE encodes. Then
# `latent_to_latent_gradients_attn`, shaped like exercise 3.
#
# *Before you run it:* the sequence is BOS, then `seq_len` random tokens, then the same tokens again.
# If the earlier SAE's latent at the first `B` (position $p$) feeds an induction latent at the second
# `A`, which position is that? (The plot outlines those cells.)
#
# <details><summary>Hint</summary>
#
# `model.run_with_hooks(resid_pre_clean, start_at_layer=layer_from, stop_at_layer=layer_to + 1,
# fwd_hooks=[(get_act_name("z", layer_from), replace), (get_act_name("z", layer_to), record)])`.
# A hook that returns a tensor replaces the activation; one that returns None only looks. Get
# `resid_pre_clean` from the cache of the true run (`get_act_name("resid_pre", layer_from)`).
# </details>

# %% [exercise exercise=attention]
def latent_acts_to_later_latent_acts_attn(
    latent_acts_nonzero: Float[Tensor, " nonzero_acts"],
    latent_acts_nonzero_inds: Int[Tensor, "nonzero_acts n_indices"],
    latent_acts_shape: tuple[int, ...],
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
    resid_pre_clean: Tensor,
) -> tuple[Tensor, tuple[Tensor]]:
    """
    The later attention SAE's latents, when the earlier attention layer's `z` is replaced by the
    earlier SAE's reconstruction (decoded from the sparse latents given in the first three arguments).

    `resid_pre_clean` is the clean residual stream entering the earlier SAE's layer; the forward pass
    starts there. Returns (values of the active later latents, (dense later latents,)).
    """
    ### BEGIN SOLUTION
    latent_acts = SparseTensor.from_sparse((latent_acts_nonzero, latent_acts_nonzero_inds, latent_acts_shape)).dense
    z_recon = sae_from.decode(latent_acts)
    recorded = {}

    def replace_z(z: Tensor, hook: HookPoint) -> Tensor:
        return z_recon

    def record_z(z: Tensor, hook: HookPoint) -> None:
        recorded["z"] = z

    model.run_with_hooks(
        resid_pre_clean,
        start_at_layer=_get_hook_layer(sae_from),
        stop_at_layer=_get_hook_layer(sae_to) + 1,
        fwd_hooks=[(get_act_name("z", _get_hook_layer(sae_from)), replace_z), (get_act_name("z", _get_hook_layer(sae_to)), record_z)],
    )
    latent_acts_next_recon = SparseTensor.from_dense(sae_to.encode(recorded["z"]))
    return latent_acts_next_recon.sparse[0], (latent_acts_next_recon.dense,)
    ### END SOLUTION


def latent_to_latent_gradients_attn(
    tokens: Float[Tensor, "batch seq"],
    sae_from: SAE,
    sae_to: SAE,
    model: HookedSAETransformer,
) -> tuple[Tensor, SparseTensor, SparseTensor, SparseTensor]:
    """
    The gradients between every active latent of two attention SAEs (both reading concatenated `z`).

    Returns:
        latent_latent_gradients: (n_active_next_recon, n_active_prev)
        latent_acts_prev:        the earlier SAE's latent activations
        latent_acts_next:        the later SAE's true latent activations
        latent_acts_next_recon:  the later SAE's activations when the earlier layer's z is reconstructed
    """
    ### BEGIN SOLUTION
    resid_pre_name = get_act_name("resid_pre", _get_hook_layer(sae_from))
    acts_prev_name = f"{sae_from.cfg.metadata.hook_name}.hook_sae_acts_post"
    acts_next_name = f"{sae_to.cfg.metadata.hook_name}.hook_sae_acts_post"
    with t.no_grad():
        _, cache = model.run_with_cache_with_saes(
            tokens,
            saes=[sae_from, sae_to],
            use_error_term=True,
            names_filter=[resid_pre_name, acts_prev_name, acts_next_name],
            stop_at_layer=_get_hook_layer(sae_to) + 1,
            remove_batch_dim=False,
        )
    latent_acts_prev = SparseTensor.from_dense(cache[acts_prev_name])
    latent_acts_next = SparseTensor.from_dense(cache[acts_next_name])
    latent_latent_gradients, (latent_acts_next_recon_dense,) = t.func.jacrev(latent_acts_to_later_latent_acts_attn, has_aux=True)(
        *latent_acts_prev.sparse, sae_from, sae_to, model, cache[resid_pre_name]
    )
    latent_acts_next_recon = SparseTensor.from_dense(latent_acts_next_recon_dense)
    return latent_latent_gradients, latent_acts_prev, latent_acts_next, latent_acts_next_recon
    ### END SOLUTION


# %% [check]
tests.test_latent_to_latent_gradients_attn(latent_to_latent_gradients_attn, model, attn_saes)

# %% [grader exercise=attention id=attention-activations points=1]
tests.test_latent_to_latent_gradients_attn(latent_to_latent_gradients_attn, model, attn_saes, part="activations")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("attention", "activations", latent_to_latent_gradients_attn)
### END HIDDEN TESTS

# %% [grader exercise=attention id=attention-gradients points=2]
tests.test_latent_to_latent_gradients_attn(latent_to_latent_gradients_attn, model, attn_saes, part="gradients")
### BEGIN HIDDEN TESTS
import grading.kernel.hidden
grading.kernel.hidden.check("attention", "gradients", latent_to_latent_gradients_attn)
### END HIDDEN TESTS

# %%
str_toks = model.to_str_tokens(rep_tokens[0])
gradients, latent_acts_prev, latent_acts_next, latent_acts_next_recon = latent_to_latent_gradients_attn(
    rep_tokens, attn_saes[induction.layer_from], attn_saes[induction.layer_to], model
)
true_active = {tuple(x) for x in latent_acts_next.indices.tolist()}
recon_active = {tuple(x) for x in latent_acts_next_recon.indices.tolist()}
print(f"active later latents, true run: {len(true_active)}; reconstructed run: {len(recon_active)}; in one only: {len(true_active ^ recon_active)}")
ratio = induction_mass_ratio(gradients, latent_acts_prev, latent_acts_next_recon, induction.seq_len)
print(f"mean |gradient| per cell inside the outlined induction cells / outside them: {ratio:.1f}x")
plot_induction(gradients, latent_acts_prev, latent_acts_next_recon, str_toks, induction.layer_from, induction.layer_to, induction.seq_len).show()

# %% [markdown]
# The full matrix is busy. Keep only the later latents that fire at **every** position of the
# repeated half (an induction latent should: it fires whenever the current token has appeared before),
# against the earlier latents on the first half:

# %%
print(f"layer-{induction.layer_to} latents active on every token of the second half: {induction_latents(latent_acts_next_recon, induction.seq_len)}")
plot_induction_filtered(gradients, latent_acts_prev, latent_acts_next_recon, str_toks, induction.layer_from, induction.layer_to, induction.seq_len).show()

# %% [markdown]
# ### What to look for
#
# **GPT-2 small** (layers 4 → 5, head 4.11 a previous-token head, heads 5.1, 5.5 and 5.8 induction
# heads, `seq_len` 10): 476 later latents are active in the true run and 492 in the reconstructed
# one, 150 in only one of them: random tokens are far from the text the SAEs were trained on, so
# they reconstruct less well here. Latents 35425 and 36126 of layer 5 fire on every token of the
# second half; they look like induction latents, and the layer-4 latents with the largest
# gradients to them (e.g. 22975, 21020, 23954) mostly look like previous-token latents.
#
# **This world:**

# %%
show_observations(world, "attention")
for sae_id, latent_idx in world.facts.get("attention", {}).get("dashboards", []):
    display_dashboard(sae_id=sae_id, latent_idx=latent_idx)

# %% [markdown]
# ## Where next
#
# - Average the gradients over many prompts to find latent pairs that interact across a dataset,
#   not just on one input.
# - Repeat exercise 5 with `k=None` on a short prompt to see how dense latent-to-logit effects are.
# - Try MLP-output SAEs: replace the MLP's output with the SAE's reconstruction with a hook, as in
#   exercise 6.
