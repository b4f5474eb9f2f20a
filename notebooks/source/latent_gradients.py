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
# **Why it matters.** Circuits built from a model's own components (heads, neurons, residual
# directions) are hard to read: most of their connections are dense, and many small contributions
# cross-talk through shared subspaces. If SAE latents connect *sparsely*, each latent feeding only a
# few later ones, then circuits of latents can be read where circuits of components cannot, and that
# sparsity is evidence that latents are units the model computes with, not merely a good way to
# cluster its activations. Dense connections between latents would say the opposite.
#
# **By the end you will be able to**
#
# - compute the gradients between the active latents of SAEs at two layers, with `torch.func.jacrev`;
# - compute which input tokens a latent reads, and which latents push a prediction (the logits);
# - tell a sensitivity (a gradient) from a contribution (gradient × activation);
# - use the same method on attention-output SAEs to find an induction circuit.
#
# **What you should know first.** PyTorch and autograd; TransformerLens hooks and the residual stream;
# what an attention head does; what an SAE is. Four words used below, defined here:
#
# - **L0**: the mean number of latents active (nonzero) per token; lower is sparser.
# - **Variance explained**: $1 - \|x - \hat x\|^2 / \|x - \bar x\|^2$ summed over tokens, for activations
#   $x$, their SAE reconstruction $\hat x$ and their mean $\bar x$: how much of the activations'
#   spread the reconstruction keeps.
# - **Error term**: $x - \hat x$, what the SAE fails to reconstruct. Adding it back to the reconstruction
#   gives the true activation exactly.
# - **Splicing** an SAE in: replacing an activation by the SAE's reconstruction during the forward pass,
#   so that everything after it runs on what the latents say (with the error term added back, the run is
#   unchanged and the latents can still be read and edited).
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
# | 7 (optional capstone) | tokens, then residual latents at a few layers | the top prediction's logit | a circuit for one prediction, and whether it is real |
#
# **How to work through it.** Read each explanation, answer the *predict* questions before you run
# the cells, fill in the function (below `# YOUR CODE HERE`, delete the `raise NotImplementedError()`;
# the `return` line under it shows what to return), then run the check cell under it. A check
# compares your function with a reference solution on the same model and says what differs, and
# often why. Helper functions have their own check, right under them, so a bug is found where it is
# made. Hints, answers and each world's observations are in collapsible notes (click the ▸ line):
# open them when you are stuck, or after you have looked yourself.
#
# **Which model?** The first code cell loads a *world*: a model with its SAEs, and the layers and
# prompts each exercise uses. With internet access it is GPT-2 small with the SAEs from the
# original research; offline it is a small model trained for this course on a corpus written for it
# (landmark facts and repeated random sequences). The toy world reproduces some of GPT-2's phenomena
# and not others: the cell under the loading code lists what it was trained on, what it reproduces,
# how strongly (measured), and what it does not. Set `LATENT_GRADIENTS_WORLD=toy` (or `gpt2`) to
# choose. Expected outputs are given for GPT-2 (labelled so) and printed, measured, for the toy world.
#
# <details><summary>What <code>load_world("gpt2")</code> loads, as code you could run yourself</summary>
#
# ```python
# from sae_lens import SAE, HookedSAETransformer
#
# model = HookedSAETransformer.from_pretrained("gpt2-small")
# # Residual-stream SAEs (Joseph Bloom's release), one per layer, on each block's input:
# saes = {layer: SAE.from_pretrained(release="gpt2-small-res-jb", sae_id=f"blocks.{layer}.hook_resid_pre")
#         for layer in (0, 3, 9)}
# # Attention-output SAEs (Kissane et al.'s release), on each layer's z, heads concatenated:
# attn_saes = {layer: SAE.from_pretrained(release="gpt2-small-hook-z-kk", sae_id=f"blocks.{layer}.hook_z")
#              for layer in (4, 5)}
# ```
#
# `load_world` does the same, loads the other layers' SAEs on first use, and falls back to the toy
# world when Hugging Face cannot be reached.
# </details>
#
# **Further reading.**
#
# - Bricken et al., [Towards Monosemanticity](https://transformer-circuits.pub/2023/monosemantic-features)
#   (2023): SAEs on a transformer, and what their latents look like.
# - Marks et al., [Sparse Feature Circuits](https://arxiv.org/abs/2403.19647) (2024): circuits of SAE
#   latents found with gradients and ablations.
# - Anthropic, [Circuits Updates, April 2024](https://transformer-circuits.pub/2024/april-update/index.html):
#   among other notes, a proposal for SAEs whose latents also act sparsely on what comes after them.
# - Olsson et al., [In-context Learning and Induction Heads](https://transformer-circuits.pub/2022/in-context-learning-and-induction-heads/index.html)
#   (2022): the circuit exercise 6 looks for.
# - PyTorch's [`torch.func.jacrev`](https://pytorch.org/docs/stable/generated/torch.func.jacrev.html)
#   reference, for its `argnums` and `has_aux` arguments.

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
    free_memory,
    gradient_shares,
    induction_latents,
    induction_rectangle_masses,
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

# %% [demo]
show_observations(world, "world")

# %% [markdown]
# ## What a latent gradient is
#
# Take one input. Let $x$ be the activations of the active latents of an SAE at layer $L_1$, and
# $y$ those of an SAE at a later layer $L_2$. The path from $x$ to $y$ is: decode $x$ into the
# residual stream at $L_1$, run the model's blocks $L_1 \dots L_2 - 1$, encode the result with the
# second SAE. That path is a function $y = f(x)$, and its Jacobian $J_{ij} = \partial y_i / \partial x_j$
# is a **sensitivity**: how much later latent $i$ would move per unit change of earlier latent $j$.
# It is not yet a contribution. How much latent $j$ actually adds to latent $i$ on this input is, to
# first order, the gradient times the activation, $J_{ij}\,x_j$: a large gradient on a latent that
# barely fires matters less than a moderate one on a latent that fires strongly.
#
# In outline (names of our own; the exercises fill in each step):
#
# ```python
# # 1. One clean run, no gradients: which latents fire, and how strongly, at both layers.
# acts_early, acts_late = true_latent_activations(tokens, sae_early, sae_late)
#
# # 2. f: the active early latents' values -> the late latents' values.
# def latent_acts_to_later_latent_acts(early_values):
#     resid = sae_early.decode(early_values placed back at their positions)
#     resid = model.blocks[layer_early : layer_late](resid)
#     return sae_late.encode(resid)  # kept to the latents that are active
#
# # 3. Its Jacobian at this input: one row per late latent, one column per early latent.
# jacobian = torch.func.jacrev(latent_acts_to_later_latent_acts)(acts_early.values)
# ```
#
# `torch.func.jacrev(f)` returns a function that computes that Jacobian by reverse-mode
# autodiff: one backward pass per **output**, all of them vectorised together. Its memory therefore
# grows with the number of outputs (it builds an outputs × outputs one-hot basis to push back), which
# is why we keep the outputs to the active latents.
#
# Two details shape the code:
#
# - **Only active latents.** An SAE has tens of thousands of latents, and at any token only a few
#   dozen are active. A Jacobian over every latent, at every position, would have billions of
#   entries. So we differentiate with respect to the *values of the active latents* only.
# - **True versus reconstructed.** In $f$, the later SAE sees the earlier SAE's *reconstruction*,
#   not the real residual stream. If the earlier SAE reconstructs badly, $f$ describes a slightly
#   different model. We therefore also compute the later latents' *true* activations and compare.
#
# %% [markdown only=learner]
# **A note before you start.** The next three exercises (`SparseTensor`, then the two functions that
# give latent-to-latent gradients) are fiddly: sparse bookkeeping, and `jacrev`'s conventions. Reading
# their solutions (`latent_gradients_solutions.ipynb`) first, and making sure you understand each
# line, is a perfectly good way through; then write exercise 4 (token-to-latent gradients) yourself,
# which uses the same ideas.

# %% [markdown only=graded]
# **A note before you start.** The next three exercises (`SparseTensor`, then the two functions that
# give latent-to-latent gradients) are fiddly: sparse bookkeeping, and `jacrev`'s conventions. Take
# them slowly: each has its own check, which says what differs from the reference and often why, and
# the hints open in two steps, the idea first and the code second.

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
# <details><summary>Hint: the idea</summary>
#
# A boolean mask of the positive entries gives both halves: indexing the tensor with it gives the
# values, and asking where it is true gives the indices, in the same row-major order. Scattering back
# is indexing with one index tensor per dimension, on a tensor of zeros like the values.
# </details>
#
# <details><summary>Hint: the code</summary>
#
# `torch.argwhere(mask)` (or `mask.nonzero()`) returns the `(n_nonzero, k)` indices in row-major
# order, the same order in which `dense[mask]` returns the values. To scatter back,
# `dense[indices.unbind(-1)] = values` indexes with one index tensor per dimension. Create the
# zeros with the values' dtype and device.
# </details>
#
# <details><summary>Answer to the shape question</summary>
#
# 1-D, 10 nonzero: `values` is `(10,)` and `indices` is `(10, 1)` (one column per dimension; the
# `indices` property flattens it to `(10,)` for 1-D tensors). `(1, 8, 24576)` with one nonzero:
# `values` is `(1,)` and `indices` is `(1, 3)`: batch, position and latent of the one active latent.
# Either way `values` is 1-D, whatever the tensor's rank.
# </details>

# %% [exercise exercise=sparse_tensor contract=solutions.sparse_tensor.SparseTensor]

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

# %% [graded exercise=sparse_tensor]

# %% [markdown]
# A quick look at what you built, on a small example:

# %% [demo]
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
# <details><summary>Hint: the idea</summary>
#
# Four steps: turn the sparse arguments back into a dense tensor of latents, decode it into the
# residual stream, run the blocks between the two SAEs, encode. Your `SparseTensor` does the first
# step and gives both outputs of the last.
# </details>
#
# <details><summary>Hint: the code</summary>
#
# Dense latents from the sparse arguments with `SparseTensor.from_sparse`; decode; run the blocks
# from `_get_hook_layer(sae_from)` up to (not including) `_get_hook_layer(sae_to)`; encode; then
# `SparseTensor.from_dense` gives you both the values and the dense tensor to return.
# </details>
#
# <details><summary>Answer: which blocks</summary>
#
# Blocks 0, 1 and 2. The layer-0 SAE reads `blocks.0.hook_resid_pre`, the input of block 0, and the
# layer-3 SAE reads `blocks.3.hook_resid_pre`, the input of block 3, which is the output of block 2.
# So `start_at_layer=0, stop_at_layer=3`: `stop_at_layer` is exclusive.
# </details>

# %% [exercise exercise=latent_to_latent contract=solutions.latent_to_latent.latent_acts_to_later_latent_acts]
    ### BEGIN SOLUTION
    latent_acts = SparseTensor.from_sparse((latent_acts_nonzero, latent_acts_nonzero_inds, latent_acts_shape)).dense
    resid_from = sae_from.decode(latent_acts)
    resid_to = model(resid_from, start_at_layer=_get_hook_layer(sae_from), stop_at_layer=_get_hook_layer(sae_to))
    latent_acts_next_recon = SparseTensor.from_dense(sae_to.encode(resid_to))
    ### END SOLUTION

    return latent_acts_next_recon.sparse[0], (latent_acts_next_recon.dense,)


# %% [markdown]
# Its own check: your function and the reference map the same earlier activations (this world's
# prompt, layers as in exercise 3), and the check compares both outputs, then differentiates
# **through your function** and compares the Jacobian, so that right values with a broken gradient
# (a `.detach()`, a round trip through Python numbers) are caught here, not later. Not graded.

# %% [check ungraded=locked]
tests.test_latent_acts_to_later_latent_acts(latent_acts_to_later_latent_acts, model, saes)

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
# 2. Wrap exercise 2's function with `t.func.jacrev`, differentiating with respect to its first
#    argument only (the values of the active earlier latents: `argnums`), and telling it that the
#    function returns `(output, aux)` (`has_aux`). The other arguments (indices, shape, SAEs, model)
#    are passed through untouched, and the wrapped function returns `(jacobian, aux)`.
#
#    <details><summary>The exact call</summary>
#
#    `t.func.jacrev(latent_acts_to_later_latent_acts, argnums=0, has_aux=True)`. `argnums=0` is the
#    default; writing it makes the choice visible.
#    </details>
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
# <details><summary>Help: I run out of memory</summary>
#
# `jacrev` runs one backward pass per **output**, and builds a one-hot basis of outputs × outputs to
# do it, so its memory grows with the square of the number of outputs. If the function you
# differentiate returns a *dense* tensor, every later latent at every position is an output. The cell
# under this exercise's text counts them from the tokenizer and the SAE's width, for this world and
# for GPT-2, and prints what the basis alone would take: for GPT-2 it is far more memory than any
# GPU has. A dense *input* with sparse outputs is far cheaper: a few hundred backward passes, each
# as big as the input.
#
# So read how much memory the error says it tried to allocate. If it is 30 GB or more, you are almost
# certainly differentiating a dense output: return `latent_acts_next_recon.sparse[0]` (the active
# values) as the differentiated output, and pass `*latent_acts_prev.sparse` in.
#
# If the amounts are modest and you still run short, look at what the session holds and free what it
# no longer needs (another model, old results):
#
# ```python
# print(memory_report())   # memory in use on this device
# del old_results          # whatever you no longer need
# free_memory()            # collect garbage, return cached GPU memory
# print(memory_report())
# ```
# </details>
#
# <details><summary>Hint: state</summary>
#
# Leave the model and SAEs as you found them: no hooks, no attached SAEs, and each SAE's own
# `use_error_term` unchanged. Passing `use_error_term=True` to `run_with_cache_with_saes` (rather
# than setting it on the SAE) does that for you.
# </details>

# %% [demo]
# What differentiating a dense output would cost: one output per (position, later latent), and a
# float32 one-hot basis of outputs x outputs.
from part_utils.device import dense_output_basis
from part_utils.gpt2_world import GPT2_EXERCISES, RESIDUAL_D_SAE
from part_utils.tokenizer import gpt2_tokenizer

gpt2_prompt = GPT2_EXERCISES.latent_to_latent.prompt
for label, n_positions, d_sae in [
    ("this world", model.to_tokens(exercises.latent_to_latent.prompt).shape[1], saes[exercises.latent_to_latent.layer_to].cfg.d_sae),
    ("GPT-2", 1 + len(gpt2_tokenizer().encode(gpt2_prompt)), RESIDUAL_D_SAE),  # 1 + : the BOS token
]:
    n_outputs, basis_bytes = dense_output_basis(n_positions, d_sae)
    print(f"{label}: {n_positions} positions x {d_sae:,} latents = {n_outputs:,} outputs; basis {basis_bytes / 1e9:,.1f} GB")

# %% [exercise exercise=latent_to_latent contract=solutions.latent_to_latent.latent_to_latent_gradients]
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

    jacobian_fn = t.func.jacrev(latent_acts_to_later_latent_acts, argnums=0, has_aux=True)
    latent_latent_gradients, (latent_acts_next_recon_dense,) = jacobian_fn(*latent_acts_prev.sparse, sae_from, sae_to, model)
    latent_acts_next_recon = SparseTensor.from_dense(latent_acts_next_recon_dense)
    ### END SOLUTION

    return (
        latent_latent_gradients,
        latent_acts_prev,
        latent_acts_next,
        latent_acts_next_recon,
    )


# %% [check]
tests.test_latent_to_latent_gradients(latent_to_latent_gradients, model, saes)

# %% [graded exercise=latent_to_latent]

# %% [markdown]
# Now run it on this world's prompt and look at the result. First a sanity check of the
# reconstruction: if the earlier SAE were perfect, the same later latents would be active in the
# true and the reconstructed runs.
#
# The plot labels each latent `F{layer}.{latent}`, then the token and position it is active at:
# `F3.509, 'iff' (3)` is latent 509 of the layer-3 SAE, firing on the token "iff" at position 3.
# Earlier latents run down the side, later ones along the top; hover over a cell for its value. On
# each side it shows the latents with the largest |gradient × activation| (its subtitle says how many
# of how many), kept in position order; pass `max_latents=None` to `plot_latent_to_latent` to see them all.
#
# > **Challenge.** Before you open the notes below the plot: find a pair of latents that looks like a
# > circuit for **bigrams whose first token is " E"**, an earlier latent on " E" that drives a later
# > latent on the token after it. (Hint: most of the matrix connects latents at the *same* position;
# > look for a strong cell that does not.)

# %% [demo]
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
from part_utils.plots import LARGE_GRADIENT_FRACTION

shares = gradient_shares(gradients, latent_acts_prev, latent_acts_next_recon)
print(f"of the {gradients.numel()} entries: {shares['causal']:.1%} are pairs the causal mask allows (earlier position <= later),")
print(f"  {shares['nonzero']:.1%} are nonzero, {shares['large']:.1%} are above {LARGE_GRADIENT_FRACTION:.0%} of the largest |gradient|")
plot_latent_to_latent(gradients, latent_acts_prev, latent_acts_next_recon, str_toks, settings.layer_from, settings.layer_to).show()

# %% [markdown]
# ### What to look for
#
# <details><summary>Answers to the questions before exercise 3</summary>
#
# - **Mostly zero?** Exactly zero where the causal mask forbids it, and nearly everywhere else *small*
#   rather than zero. Every pair whose earlier latent sits at a later position than the later latent
#   is exactly zero; the pairs the mask allows are almost all nonzero (the first two shares printed
#   above the plot are close), because every layer mixes a little of everything through LayerNorm and
#   attention. What is sparse is the *large* gradients: the third share, those above a tenth of the
#   largest, is a small part of the entries. An earlier latent mostly writes in directions a given
#   later latent barely reads.
# - **Which positions?** Attention only looks backwards, so an earlier latent at position $p$ can
#   reach a later latent at position $q$ only if $p \le q$; every other cell is exactly zero.
# - **Same or across positions?** Mostly the same position: the residual stream carries a token's own
#   features forward directly, while moving information across positions needs an attention head to
#   do it.
# </details>
#
# <details><summary>GPT-2 small: what the original analysis found (open after the challenge)</summary>
#
# Layers 0 → 3, prompt "The Eiffel tower is in Paris": 181 later latents are active in the true run
# and 179 in the reconstructed one, with 8 active in only one of them. Most large gradients connect
# latents at the **same** position, often what looks like the same feature seen again a few layers
# later: F0.9449 on " Paris" feeds F3.385 on " Paris". Cross-position gradients are rare. One stands
# out: F0.16911 on " E" drives F3.15266 on "iff", a circuit for words that begin with the token " E"
# (GPT-2 splits " Eiffel" into " E", "iff", "el").
# </details>
#
# **The world you loaded** (open it after the challenge; the toy world's figures were measured when it was built):

# %% [demo]
show_observations(world, "latent_to_latent")

# %% [markdown]
# Look the latents up. Online with GPT-2 this opens Neuronpedia's dashboard; offline you get a
# card computed here: the contexts where the latent fires most, and the tokens its decoder direction
# pushes up and down through the unembedding.

# %% [demo]
for sae_id, latent_idx in world.facts.get("latent_to_latent", {}).get("dashboards", []):
    display_dashboard(sae_id=sae_id, latent_idx=latent_idx)

# %% [markdown]
# ## Exercise 4: token-to-latent gradients
#
# > **Difficulty** 🔴🔴🔴🔴⚪ · **Importance** 🔵🔵⚪⚪⚪ · about 30–40 minutes
#
# Which input tokens does a latent read? Tokens are not numbers we can differentiate with respect
# to, so we invent one: multiply the input of block 0 at each position $p$ by a scale $s_p$, and
# differentiate the latents with respect to $s$ at $s = (1, \dots, 1)$. No real model scales its
# embeddings like this; it is a convenient probe of which positions matter.
#
# What "the input of block 0" is depends on how the model encodes positions, so check your world
# with the cell below:
#
# - **learned absolute positions** (GPT-2): `model(tokens, stop_at_layer=0)` returns the token
#   embedding **plus** the positional embedding. Scaling it scales both: the probe asks "what if
#   this token, at this place, weighed more?";
# - **rotary positions** (the toy world): there is no positional embedding to add.
#   `model(tokens, stop_at_layer=0)` returns the token embedding **alone**, and positions enter
#   inside each attention layer, which rotates queries and keys by their positions. Scaling it
#   scales only the token's content; where it stands is untouched.
#
# Either way, `model(tokens, stop_at_layer=0)` is what you scale. One more thing to know when you
# read the plot: block 0's attention reads each position through a LayerNorm, which divides out a
# uniform scale, so the probe does not change what that first attention layer reads. What it changes
# is how much the token's embedding weighs against everything the layers then add to the residual
# stream. It is a blunt instrument; read the plot with that in mind.
#
# Write `tokens_to_latent_acts(token_scales, tokens, sae, model)`, returning the active latents'
# values and `(dense,)` like before (it has its own check), and `token_to_latent_gradients(tokens,
# sae, model)`, returning the gradients shaped `(batch, seq, n_active_latents)` and the latents as a
# `SparseTensor`.
#
# *Before you run it:* which rows (tokens) can have a nonzero gradient for a latent active at
# position 4? What would you expect for the " E" → "iff" latent you saw above?
#
# <details><summary>Hint: the idea</summary>
#
# The scales are the input you differentiate with respect to: multiply block 0's input by them,
# position by position, run the blocks up to the SAE's layer and encode, as in exercise 2. The
# Jacobian comes out with the outputs (active latents) first; the plot wants them last.
# </details>
#
# <details><summary>Hint: the code</summary>
#
# `model(tokens, stop_at_layer=0)` returns the input of block 0 (see above for what it holds in your
# world). Scale it (`einops.einsum` or broadcasting `token_scales[..., None]`), continue with
# `model(x, start_at_layer=0, stop_at_layer=_get_hook_layer(sae))`, encode. `jacrev` returns
# `(n_active, batch, seq)`: rearrange it.
# </details>

# %% [demo]
if model.cfg.positional_embedding_type == "standard":
    print("This world learns absolute positions: block 0's input is the token embedding plus the positional embedding.")
else:
    print(
        f"This world uses {model.cfg.positional_embedding_type} positions: block 0's input is the token embedding alone; "
        "positions act inside attention."
    )

# %% [exercise exercise=token_to_latent contract=solutions.token_to_latent.tokens_to_latent_acts]
    ### BEGIN SOLUTION
    embeddings = model(tokens, stop_at_layer=0)
    scaled = einops.einsum(embeddings, token_scales, "batch seq d_model, batch seq -> batch seq d_model")
    resid = model(scaled, start_at_layer=0, stop_at_layer=_get_hook_layer(sae))
    sae_latents = SparseTensor.from_dense(sae.encode(resid))
    ### END SOLUTION

    return sae_latents.sparse[0], (sae_latents.dense,)


# %% [check ungraded=locked]
tests.test_tokens_to_latent_acts(tokens_to_latent_acts, model, saes)

# %% [exercise exercise=token_to_latent contract=solutions.token_to_latent.token_to_latent_gradients]
    ### BEGIN SOLUTION
    token_scales = t.ones(tokens.shape, device=model.cfg.device)
    jacobian, (latent_acts_dense,) = t.func.jacrev(tokens_to_latent_acts, has_aux=True)(token_scales, tokens, sae, model)
    token_latent_grads = einops.rearrange(jacobian, "n_active batch seq -> batch seq n_active")
    latent_acts = SparseTensor.from_dense(latent_acts_dense)
    ### END SOLUTION

    return (token_latent_grads, latent_acts)


# %% [check]
tests.test_token_to_latent_gradients(token_to_latent_gradients, model, saes)

# %% [graded exercise=token_to_latent]

# %% [markdown]
# > **Challenge.** Take the pair of latents you found in exercise 3's plot (an earlier latent on " E"
# > driving a later latent on "iff"). Can you find that circuit again from this plot, with tokens
# > down the side and the layer-3 latents along the top? Look at the " E" row, in the column of the
# > later latent on "iff". (The plot shows the latents with the largest |gradient|, in position order;
# > if that latent is not among them, pass `max_latents=None` to `plot_token_to_latent`.)

# %% [demo]
settings = exercises.token_to_latent
tokens = model.to_tokens(settings.prompt)
str_toks = model.to_str_tokens(settings.prompt)
token_latent_grads, latent_acts = token_to_latent_gradients(tokens, saes[settings.layer], model)
plot_token_to_latent(token_latent_grads, latent_acts, str_toks, settings.layer).show()

# %% [markdown]
# ### What to look for
#
# <details><summary>Answers to the questions before exercise 4</summary>
#
# - **Which rows?** A latent active at position 4 can only depend on tokens 0 to 4: attention never
#   looks ahead. In the plot, tokens run down the side in order and latents run along the top sorted
#   by position, so every nonzero entry lies on or above a staircase that descends to the right:
#   the **lower-left** part (late tokens, early latents) is empty. Most latents depend mostly on
#   their own token, the bottom step of their column.
# - **The " E" → "iff" latent:** if the bigram circuit is real, the " E" row should show a gradient in
#   the column of the later latent on "iff". Whether it does is the challenge; the notes below say
#   what was measured.
# </details>
#
# <details><summary>GPT-2 small (open after the challenge)</summary>
#
# Layer 3: what we would expect if the bigram circuit shows from the token side is a clear gradient
# from the " E" token to F3.15266, the latent on "iff" from the previous exercise. Read the plot with
# the LayerNorm caveat above: the probe can miss a real dependence, so a weak " E" row would not
# disprove the circuit, and a strong one is a hint, not a proof.
# </details>
#
# **The world you loaded** (open it after the challenge):

# %% [demo]
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
# auxiliary output); it has its own check. Then `latent_to_logit_gradients(tokens, sae, model, k)`, which returns
# `(gradients (k, n_active), logits, logits_recon, token_ids, latent_acts)`; `logits` are the
# **true** logits at the final position, and `token_ids` their top k as a Python list.
#
# Expect these gradients to be less sparse than the last two kinds: the SAE's training penalises
# dense *activations*, but nothing penalises a latent for nudging many logits. Anthropic's
# [April 2024 circuits update](https://transformer-circuits.pub/2024/april-update/index.html)
# sketches a training objective that would penalise that too.
#
# Why only the top `k`? `jacrev` runs one backward pass per output: with every logit as an output
# that is one pass per vocabulary entry (50,257 for GPT-2's tokenizer), and a one-hot basis of
# 50,257² floats (10 GB) before any of them runs. `k` keeps the outputs, and the memory, small.
#
# *Before you run it:* the prompt ends "...is in the city of". Which latents would you expect to
# push " Paris" up, and what else might they push up with it?
#
# <details><summary>Hint: the idea</summary>
#
# The same shape as exercise 3, with the logits in place of the later SAE: one clean run gives the
# true logits and the latents; the function you differentiate decodes the latents and runs the rest
# of the model; only the final position's top-`k` logits are outputs.
# </details>
#
# <details><summary>Hint: the code</summary>
#
# Run the model once with the SAE spliced in (`use_error_term=True`) to get both the true logits and
# the latents from the cache. `model(resid, start_at_layer=layer)` runs to the logits.
# `logits.topk(k).indices.tolist()` gives the token ids, highest first.
# </details>

# %% [exercise exercise=latent_to_logit contract=solutions.latent_to_logit.latent_acts_to_logits]
    ### BEGIN SOLUTION
    latent_acts = SparseTensor.from_sparse((latent_acts_nonzero, latent_acts_nonzero_inds, latent_acts_shape)).dense
    resid = sae.decode(latent_acts)
    logits_recon = model(resid, start_at_layer=_get_hook_layer(sae))[0, -1]
    ### END SOLUTION

    return logits_recon[token_ids], (logits_recon,)


# %% [check ungraded=locked]
tests.test_latent_acts_to_logits(latent_acts_to_logits, model, saes)

# %% [exercise exercise=latent_to_logit contract=solutions.latent_to_logit.latent_to_logit_gradients]
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
    ### END SOLUTION

    return (
        latent_logit_gradients,
        logits,
        logits_recon,
        token_ids,
        latent_acts,
    )


# %% [check]
tests.test_latent_to_logit_gradients(latent_to_logit_gradients, model, saes)

# %% [graded exercise=latent_to_logit]

# %% [markdown]
# First, how well does the model do on the prompt, with and without the SAE spliced in (its
# reconstruction replacing the residual stream)? `use_error_term=False` is what makes the
# reconstruction replace the residual stream: an SAE in error-term mode adds its own error back, and
# the second run would silently show the clean model again.

# %% [demo]
settings = exercises.latent_to_logit
tokens = model.to_tokens(settings.prompt)
str_toks = model.to_str_tokens(settings.prompt)
test_prompt(settings.prompt, settings.answer, model, top_k=5)
with model.saes(saes=[saes[settings.layer]], use_error_term=False):
    test_prompt(settings.prompt, settings.answer, model, top_k=5)

# %% [demo]
latent_logit_grads, logits, logits_recon, token_ids, latent_acts = latent_to_logit_gradients(
    tokens, saes[settings.layer], model, k=settings.k
)
plot_latent_to_logit(latent_logit_grads, latent_acts, token_ids, str_toks, settings.layer, model).show()
plot_latent_to_logit(latent_logit_grads, latent_acts, token_ids, str_toks, settings.layer, model, contributions=True).show()

# %% [markdown]
# ### What to look for
#
# The first plot shows **sensitivities**, how much each logit would move per unit of each latent; the
# second shows **contributions**, gradient × activation: how much each latent actually pushes each
# logit, to first order. Both show the latents with the largest contribution to the top prediction,
# largest first (pass `max_latents=None` to see every active latent). A latent can be sensitive and
# contribute little, when it barely fires; the cell after the notes prints the top one of each kind.
#
# <details><summary>Answer to the question before exercise 5</summary>
#
# Latents that stand for the prompt's topic (France, Paris, the tower) should push " Paris" up, and
# with it other answers of the same kind: other cities, especially nearby or often-mentioned ones.
# Expect less sparsity than in the last two plots: nothing in an SAE's training asks a latent to
# move only a few logits.
# </details>
#
# <details><summary>GPT-2 small</summary>
#
# Layer 9, k = 25: " Paris" is the top prediction (logit 14.83, probability 4.8%, ahead of " London"
# and " Amsterdam"); with the SAE spliced in it drops to rank 9. F9.22250 stands out for being
# *specific* to " Paris": among the top predictions its gradient is large for " Paris" and small for
# the other cities; it fires mostly on French text. F9.5879 has large
# gradients to German cities (" Berlin", " Hamburg", " Cologne") and fires mostly on German text, or
# English text about Germany.
# </details>
#
# **The world you loaded:**

# %% [demo]
show_observations(world, "latent_to_logit")
# On your results: the most sensitive latent, and the largest first-order contribution (gradient x activation).
top_token = model.to_single_str_token(token_ids[0])
contributions = latent_logit_grads[0] * latent_acts.values
most_sensitive = latent_acts.indices[latent_logit_grads[0].argmax()][-1].item()
largest_contribution = latent_acts.indices[contributions.argmax()][-1].item()
print(f"Most sensitive: the {top_token!r} logit has its largest gradient, {latent_logit_grads[0].max():.3f}, on latent {most_sensitive}.")
print(f"Largest contribution: latent {largest_contribution} adds the most to the {top_token!r} logit, {contributions.max():.3f} (gradient x activation).")
for latent_idx in dict.fromkeys([most_sensitive, largest_contribution]):
    display_dashboard(sae_id=saes[settings.layer].cfg.metadata.hook_name, latent_idx=latent_idx)
for sae_id, latent_idx in world.facts.get("latent_to_logit", {}).get("dashboards", []):
    display_dashboard(sae_id=sae_id, latent_idx=latent_idx)

# %% [markdown]
# ### City or country?
#
# Change one word of the prompt, "city" to "country", and the answer should change from the city to
# its country. Which latents carry the difference? The cell below runs your function on both prompts
# and lists, for each, the latents that contribute most to its own top prediction. Latents in both
# lists carry what the prompts share (the landmark); latents in one list only carry the question asked.

# %% [demo]
def top_contributions(prompt: str, n: int = 6) -> tuple[str, dict[str, float]]:
    grads, _, _, ids, acts = latent_to_logit_gradients(model.to_tokens(prompt), saes[settings.layer], model, k=1)
    contribution = grads[0] * acts.values
    order = contribution.argsort(descending=True)[:n]
    prompt_toks = model.to_str_tokens(prompt)
    labels = [f"F{settings.layer}.{latent} on {prompt_toks[pos]!r}" for _, pos, latent in acts.indices[order].tolist()]
    return model.to_single_str_token(ids[0]), dict(zip(labels, contribution[order].tolist()))


city_prompt = settings.prompt
country_prompt = city_prompt.replace("the city of", "the country of")
answers = {prompt: top_contributions(prompt) for prompt in (city_prompt, country_prompt)}
for prompt, (answer, latents) in answers.items():
    print(f"{prompt!r} -> {answer!r}; largest contributions: " + ", ".join(f"{name} {value:+.2f}" for name, value in latents.items()))
shared = set(answers[city_prompt][1]) & set(answers[country_prompt][1])
print(f"in both lists: {sorted(shared) or 'none'}")

# %% [markdown]
# ## Exercise 5b: is the attribution true?
#
# > **Difficulty** 🔴🔴🔴⚪⚪ · **Importance** 🔵🔵🔵🔵🔵 · about 30 minutes
#
# Gradient × activation is a **first-order estimate**: what the output would lose if the latent's
# activation went to zero *and the model were linear in it*. It is not a measurement. This exercise
# measures the intervention it estimates, and puts the two side by side.
#
# **A metric first.** The raw logit of " Paris" is not a metric: the softmax ignores a constant added to
# every logit, so one logit can rise or fall by several units while no probability and no prediction
# changes. Two quantities do mean something. The **logit difference** against a contrast answer of the
# same kind (this world's `exercises.latent_to_logit.contrast`, another city), which a constant cancels
# from; and the answer's **probability**. `answer_metrics(logits, answer_id, contrast_id)` returns both
# along the last axis.
#
# **Two ablations.** Zero-ablation sets the latent to 0. Mean-ablation sets it to its mean activation over
# the world's reference prompts (`exercises.latent_to_logit.reference_prompts`: the same question about
# other landmarks), which takes away what is special about this prompt rather than everything the
# latent does. Either way, the SAE is spliced in **with its error term**, so that with nothing ablated
# the model is exactly the clean model, and only the latent changes.
#
# Write `attribution_and_ablation(tokens, sae, model, latent_inds, ablated_values, answer_id, contrast_id)`.
# For each row `(batch, position, latent)` of `latent_inds`, it returns the estimate, the metrics' gradient
# with respect to that latent times `(activation - ablated value)`, and the effect, the metrics of the
# clean run minus those with that one latent set to its ablated value: both are how much the latent adds
# to each metric, so where the estimate is exact the two agree.
#
# *Before you run it:* which latents do you expect the estimate to get right, and which wrong? Think of a
# latent that carries the prompt's last word into the prediction, of a latent in the middle of the prompt,
# and of a latent in layer 0, where the SAE has very few active latents per token (printed below the plot, for
# this prompt).
#
# <details><summary>Hint: the idea</summary>
#
# Write one function from the SAE's latents to the two metrics, with the SAE's error added back to its
# reconstruction, so that on the clean latents it gives the clean model's metrics. Both halves come from it:
# its gradient at the clean latents for the estimates, and its value on the latents with one entry changed
# for each effect. Ablations of different latents are independent runs, so they can share one batch.
# </details>
#
# <details><summary>Hint: the code</summary>
#
# Encode the clean residual stream (`run_with_cache`, then `sae.encode`) and keep the error,
# `resid - sae.decode(acts)`. The function is `model(sae.decode(acts) + error, start_at_layer=layer)[:, -1]`
# through `answer_metrics`: `t.func.jacrev` of it for the gradients, and, on a batch of copies of the
# latents with one entry changed per copy, every ablation in one run.
# </details>

# %%
from part_utils import answer_metrics, mean_latent_acts, plot_estimate_vs_effect

# %% [exercise exercise=attribution contract=solutions.attribution.attribution_and_ablation]
    ### BEGIN SOLUTION
    layer, hook_name = _get_hook_layer(sae), sae.cfg.metadata.hook_name
    with t.no_grad():
        _, cache = model.run_with_cache(tokens, names_filter=[hook_name])
        resid = cache[hook_name]
        acts = sae.encode(resid)
        error = resid - sae.decode(acts)

    def metrics(acts: Tensor) -> Tensor:
        logits = model(sae.decode(acts) + error, start_at_layer=layer)[:, -1]
        return answer_metrics(logits, answer_id, contrast_id)

    positions, latents = latent_inds[:, 1], latent_inds[:, 2]
    gradients = t.func.jacrev(lambda acts: metrics(acts)[0])(acts)[:, 0]  # (2, seq, d_sae)
    estimates = (gradients[:, positions, latents] * (acts[0, positions, latents] - ablated_values)).T.detach()
    with t.no_grad():
        ablated = acts.repeat(len(latent_inds), 1, 1)
        ablated[t.arange(len(latent_inds)), positions, latents] = ablated_values
        effects = metrics(acts) - metrics(ablated)
    ### END SOLUTION

    return estimates, effects


# %% [check]
tests.test_attribution_and_ablation(attribution_and_ablation, model, saes)

# %% [graded exercise=attribution]

# %% [markdown]
# Every active latent at the latent-to-logit layer, zero-ablated, on the logit difference: estimate (x)
# against effect (y). On the dashed line the estimate is exact. The points furthest from the origin are
# labelled where their labels fit; hover over any point for its latent. The eight largest estimates are
# printed below the plot with their mean-ablation figures. Answer the question above before you look.

# %% [demo]
settings = exercises.latent_to_logit
tokens = model.to_tokens(settings.prompt)
str_toks = model.to_str_tokens(settings.prompt)
sae = saes[settings.layer]
answer_id, contrast_id = model.to_single_token(settings.answer), model.to_single_token(settings.contrast)
with t.no_grad():
    clean = answer_metrics(model(tokens)[0, -1], answer_id, contrast_id)
print(f"{settings.answer!r} against {settings.contrast!r}: logit difference {clean[0]:.2f}, probability {clean[1]:.2%}")
_, cache = model.run_with_cache(tokens, names_filter=[sae.cfg.metadata.hook_name])
active = (sae.encode(cache[sae.cfg.metadata.hook_name]) > 0).nonzero()
estimates, effects = attribution_and_ablation(tokens, sae, model, active, t.zeros(len(active)), answer_id, contrast_id)
top = estimates[:, 0].abs().argsort(descending=True)[:8]
labels = [f"F{settings.layer}.{latent}@{str_toks[position]!r}" for _, position, latent in active.tolist()]
plot_estimate_vs_effect(estimates, effects, labels, title=f"Zero-ablation at layer {settings.layer}, {settings.answer!r} - {settings.contrast!r}").show()
means = mean_latent_acts(settings.reference_prompts, sae, model)
mean_estimates, mean_effects = attribution_and_ablation(tokens, sae, model, active[top], means[active[top, 2]], answer_id, contrast_id)
with t.no_grad():
    _, first_cache = model.run_with_cache(tokens, names_filter=[saes[0].cfg.metadata.hook_name])
    layer0_l0 = (saes[0].encode(first_cache[saes[0].cfg.metadata.hook_name])[0] > 0).sum(-1).float().mean()
print(f"layer-0 SAE on this prompt: {layer0_l0:.1f} active latents per token (its L0)")
print("latent          zero: estimate  effect   mean: estimate  effect   (logit difference)")
for i, row in enumerate(top.tolist()):
    print(f"{labels[row]:16} {estimates[row, 0]:+14.3f} {effects[row, 0]:+7.3f} {mean_estimates[i, 0]:+15.3f} {mean_effects[i, 0]:+7.3f}")

# %% [markdown]
# ### What to look for
#
# <details><summary>Answer to the question before exercise 5b</summary>
#
# - **Where the estimate holds:** small latents in the middle of the network, whose removal moves the
#   residual stream a little: the model is close to linear over so short a step.
# - **Where it fails:** a latent that carries much of the prediction, where the metric saturates (the
#   softmax, the final layer norm) so that the first unit of activation removed costs more or less than the
#   last; and a layer-0 latent. With so few latents per token, a layer-0 latent is much of its token:
#   zeroing it deletes the token from the prompt, a change no gradient at the clean input describes. The
#   capstone's layer-0 nodes are such latents. The observations below count, for the world you loaded, how
#   often the estimate misses a layer-0 latent's effect fivefold or in sign, against the later layers' latents.
# - **The probability** barely moves while " Paris" is near certain: the softmax is saturated, and so are
#   its gradients. The logit difference is the metric to read here; the probability says whether the
#   prediction survives.
# </details>
#
# <details><summary>GPT-2 small (unmeasured)</summary>
#
# Not run on GPT-2 (layer 9, " Paris" against " London"): what to expect, not what was measured. " Paris"
# has a probability of 4.8% there, far from saturation, so expect the probability's estimates to track its
# effects better than in the toy world; F9.22250 should have the largest estimate, and its effect should be
# of the same sign. GPT-2's layer-9 SAE has about 25 latents per token, so no single one of them carries a
# token, and most points should lie near the line.
# </details>
#
# **The world you loaded:**

# %% [demo]
show_observations(world, "attribution")

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

# %% [demo]
induction = exercises.attention
rep_tokens = induction.repeated_tokens(model, seed=0)
show_attention_patterns(model, rep_tokens, [*induction.prev_token_heads, *induction.induction_heads])

# %% [markdown]
# Now write `latent_acts_to_later_latent_acts_attn`. The earlier SAE's reconstruction must
# **replace** `z` in the earlier layer (a forward hook on its `hook_z` that returns the
# reconstruction), the model runs from the clean residual stream at the start of the earlier layer,
# and a second hook records `z` of the later layer, which the later SAE encodes. It has its own
# check. Then `latent_to_latent_gradients_attn`, shaped like exercise 3.
#
# **Shapes.** `hook_z` is `(batch, pos, n_heads, d_head)`: one vector per head, not yet
# concatenated. The attention SAEs read the heads concatenated, `n_heads * d_head` wide: their
# `encode` flattens the last two dimensions for you, and their `decode` gives back the 4-D
# `(batch, pos, n_heads, d_head)` shape. That is the shape your replacement hook must return (a hook
# that replaces an activation must return one of the same shape), so `sae_from.decode(...)` can be
# returned as it is.
#
# *Before you run it:* the sequence is BOS, then `seq_len` random tokens, then the same tokens again.
# If the earlier SAE's latent at the first `B` (position $p$) feeds an induction latent at the second
# `A`, which position is that? (The plot outlines those cells.)
#
# <details><summary>Hint: the idea</summary>
#
# Start from the clean residual stream at the earlier layer, so everything before it is the real
# model. Two hooks do the rest: one swaps the earlier layer's `z` for the SAE's reconstruction, the
# other copies out the later layer's `z` for the later SAE to encode.
# </details>
#
# <details><summary>Hint: the code</summary>
#
# `model.run_with_hooks(resid_pre_clean, start_at_layer=layer_from, stop_at_layer=layer_to + 1,
# fwd_hooks=[(get_act_name("z", layer_from), replace), (get_act_name("z", layer_to), record)])`.
# A hook that returns a tensor replaces the activation; one that returns None only looks. Get
# `resid_pre_clean` from the cache of the true run (`get_act_name("resid_pre", layer_from)`).
# </details>

# %% [exercise exercise=attention contract=solutions.attention.latent_acts_to_later_latent_acts_attn]
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
    ### END SOLUTION

    return latent_acts_next_recon.sparse[0], (latent_acts_next_recon.dense,)


# %% [check ungraded=locked]
tests.test_latent_acts_to_later_latent_acts_attn(latent_acts_to_later_latent_acts_attn, model, attn_saes)

# %% [exercise exercise=attention contract=solutions.attention.latent_to_latent_gradients_attn]
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
    ### END SOLUTION

    return (
        latent_latent_gradients,
        latent_acts_prev,
        latent_acts_next,
        latent_acts_next_recon,
    )


# %% [check]
tests.test_latent_to_latent_gradients_attn(latent_to_latent_gradients_attn, model, attn_saes)

# %% [graded exercise=attention]

# %% [markdown]
# The heatmap below has hundreds of latents on each side. It shows those with the largest
# |gradient × activation| (its subtitle says how many of how many), in position order so that each
# outlined block of induction cells stays in one piece; pass `max_latents=None` to `plot_induction` to
# see every latent. The ratios printed above it are over every latent.

# %% [demo]
str_toks = model.to_str_tokens(rep_tokens[0])
gradients, latent_acts_prev, latent_acts_next, latent_acts_next_recon = latent_to_latent_gradients_attn(
    rep_tokens, attn_saes[induction.layer_from], attn_saes[induction.layer_to], model
)
true_active = {tuple(x) for x in latent_acts_next.indices.tolist()}
recon_active = {tuple(x) for x in latent_acts_next_recon.indices.tolist()}
print(f"active later latents, true run: {len(true_active)}; reconstructed run: {len(recon_active)}; in one only: {len(true_active ^ recon_active)}")
masses = induction_rectangle_masses(gradients, latent_acts_prev, latent_acts_next_recon, induction.seq_len)
print(f"mean |gradient| per cell inside the outlined induction cells: {masses['inside']:.4f}, which is")
print(f"  {masses['inside'] / masses['outside_causal']:.1f}x the mean over the cells outside them that the causal mask allows,")
print(f"  {masses['inside'] / masses['outside']:.1f}x the mean over every cell outside them (the causally zero ones included)")
plot_induction(gradients, latent_acts_prev, latent_acts_next_recon, str_toks, induction.layer_from, induction.layer_to, induction.seq_len).show()

# %% [markdown]
# The full matrix is busy. Keep only the **induction latents**: later latents that fire at every position of
# the repeated half (an induction latent should: it fires whenever the current token has appeared before) and,
# as the control, at no more than half the positions of the first half. No token of the first half has appeared
# before, so induction has nothing to act on there: a latent that fires on both halves alike reads the tokens or
# their positions, not their repetition. Plot them against the earlier latents on the first half:

# **Your task.** Pick a few cells with large gradients in the filtered plot, and open the two latents'
# cards (`display_dashboard(sae_id=f"blocks.{layer}.hook_z", latent_idx=...)`). Does the earlier latent
# look like a previous-token latent (it fires on a token because of the token before it) and the later
# one like an induction latent (it fires on tokens that have appeared before)? The notes below name
# the pairs this world's measurement picked out.
#
# **Then, a steadier picture.** One sequence is a small sample. Run your function on more repeated
# sequences (`induction.repeated_tokens(model, seed=s)` for a few seeds `s`, or `n_seqs=` for a batch),
# average, for each pair of latent ids, the gradients in the outlined cells, and keep the later latents
# active on at least some fraction of the repeated tokens (say half) instead of on every one, and on a smaller
# fraction of the first-half ones. Do the same pairs stand out?

# %% [demo]
print(
    f"layer-{induction.layer_to} induction latents (every repeated token, at most half the first-half ones): "
    f"{induction_latents(latent_acts_next_recon, induction.seq_len)}"
)
plot_induction_filtered(gradients, latent_acts_prev, latent_acts_next_recon, str_toks, induction.layer_from, induction.layer_to, induction.seq_len).show()

# %% [markdown]
# **What the outlined cells mix.** A gradient into the induction head's output at the second A runs along two
# paths. The *key* path: the earlier latent at B (written by the previous-token head: "the token before me
# was A") changes B's key, and so how much the second A attends to B: key composition, the induction
# mechanism. The *value* path: the head, attending to B, copies B's residual stream, the earlier latent
# included, into its output. Both land in the same cell. To see how much is the value path alone, freeze the
# attention patterns: detach `hook_pattern` in every layer after the earlier SAE's, so no gradient flows
# through where the heads look, only through what they copy. What is left in the outlined cells is the
# value path; what disappears is key (and query) composition.

# %% [demo]
frozen_layers = range(induction.layer_from + 1, induction.layer_to + 1)
with model.hooks(fwd_hooks=[(get_act_name("pattern", layer), lambda pattern, hook: pattern.detach()) for layer in frozen_layers]):
    frozen_gradients, _, _, frozen_next_recon = latent_to_latent_gradients_attn(rep_tokens, attn_saes[induction.layer_from], attn_saes[induction.layer_to], model)
frozen = induction_rectangle_masses(frozen_gradients, latent_acts_prev, frozen_next_recon, induction.seq_len)
print(
    "mean |gradient| inside the outlined cells against the causally allowed cells outside them: "
    f"{masses['inside'] / masses['outside_causal']:.1f}x with the patterns live, "
    f"{frozen['inside'] / frozen['outside_causal']:.1f}x with them frozen (the value path alone)"
)
# select_by: the same latents as the live heatmap above, to compare cell by cell.
frozen_plot = plot_induction(
    frozen_gradients, latent_acts_prev, frozen_next_recon, str_toks, induction.layer_from, induction.layer_to, induction.seq_len, select_by=gradients
)
subtitle = frozen_plot.layout.title.text.split("<br>", 1)[1]
frozen_plot.update_layout(title=f"The same Jacobian with the attention patterns of layers {list(frozen_layers)} frozen<br>{subtitle}").show()

# %% [markdown]
# ### What to look for
#
# <details><summary>Answer to the question before exercise 6</summary>
#
# The sequence is BOS at position 0, the random half at positions 1 to `seq_len`, and its copy at
# `seq_len + 1` to `2 * seq_len`. The first B at position $p$ is copied at $p + \text{seq\_len}$,
# so the second A (the token just before it) sits at $p + \text{seq\_len} - 1$. The outlined cells
# pair earlier latents at $p$ with later latents at $p + \text{seq\_len} - 1$, for
# $p = 2, \dots, \text{seq\_len} + 1$.
# </details>
#
# <details><summary>GPT-2 small</summary>
#
# Layers 4 → 5, head 4.11 a previous-token head, heads 5.1, 5.5 and 5.8 induction heads, `seq_len`
# 10. In the original analysis 476 later latents were active in the true run and 492 in the
# reconstructed one, 150 in only one of them, more than on the landmark prompt. A guess, not a
# measurement: random tokens are far from the text the SAEs were trained on, so they may reconstruct
# less well. Latents 35425 and 36126 of layer 5 fired on every
# token of the second half (that analysis ran no first-half control); they look like induction latents, and the layer-4 latents with the
# largest gradients to them (e.g. 22975, 21020, 23954) mostly look like previous-token latents.
#
# Those figures came from one **unseeded** random sequence. This course seeds its sequence
# (`repeated_tokens(model, seed=0)`), so on GPT-2 your counts, and possibly the latent ids, will
# differ; what should hold is the pattern: gradient concentrated in the outlined cells, and a few
# layer-5 latents on every repeated token, of which the induction latents fire on at most half the first-half ones.
# </details>
#
# **The world you loaded:**

# %% [demo]
show_observations(world, "attention")
for sae_id, latent_idx in world.facts.get("attention", {}).get("dashboards", []):
    display_dashboard(sae_id=sae_id, latent_idx=latent_idx)

# %% [markdown]
# ## Exercise 7 (optional capstone): a circuit for one prediction
#
# > **Difficulty** 🔴🔴🔴🔴🔴 · **Importance** 🔵🔵🔵🔵⚪ · about 45–60 minutes
#
# Exercises 3 to 5 each gave one heatmap: tokens → latents, latents → later latents, latents → logits.
# Put together, they make a **circuit**: for exercise 5's prompt and its top prediction (" Paris"), a small
# graph whose nodes are the token positions, a few active latents of the residual SAEs at this world's
# layers (`exercises.latent_circuit.layers`), and the target logit. An edge's weight is **gradient × activation**
# of its source: the first-order contribution of the source to its target (a token's "activation" is its
# embedding scale, 1).
#
# One adaptation of your earlier maps: add each SAE's **error term** back to its reconstruction
# (`resid = sae.decode(latents) + error`, with `error = true input - sae.decode(sae.encode(true input))`), so
# every Jacobian is taken at the model's true activations, and return only the later latents that are
# **truly** active (index the encoded tensor with their indices). Without it, exercise 3's rows are the
# latents active in the reconstructed run, which need not be those of the true run.
#
# **Pruning, back from the logit.** The last layer's latents contribute their edge to the logit: keep the
# `k` with the largest **|contribution|**. For the layer before, a latent $u$ contributes
# $\sum_v w_{u \to v}\, \partial \text{logit} / \partial v$ over the kept latents $v$ above it, where
# $\partial \text{logit} / \partial v = \text{contribution}(v) / \text{activation}(v)$; keep the `k` largest
# |contributions| again, and so on down to the tokens (keep every token position). Finally drop the edges whose
# |weight| is below `edge_threshold` × the largest |weight| into the same node.
#
# What that score is, said plainly: a latent's contribution is a gradient **through the kept latents above
# only**, with each SAE's error held fixed at its clean value; it leaves out every path through the latents
# that were not kept. The ranking is by |contribution|, so a latent that pushes " Paris" **down** is kept as
# readily as one that pushes it up: the graph draws it in red, with its contribution's sign. A signed top `k`
# would silently drop every inhibitory latent. The measurements after the graph say how much of the
# prediction such a graph accounts for.
#
# Return a `Circuit(nodes, edges, target_token_id, layers)` of `CircuitNode(kind, layer, position, index,
# activation, contribution)` and `CircuitEdge(source=node.key, target=node.key, weight)`
# (`part_utils.circuit`; `index` is the latent for a latent, the token id for a token or the logit; the
# logit's activation and contribution are its value).
#
# *Before you run it:* which positions do you expect the kept latents of the last layer to sit at? Which of
# the earlier plots' latents, the " E" → "iff" pair of exercise 3 and the latents that pushed " Paris" in
# exercise 5, would you expect to find in the circuit?
#
# <details><summary>Hint: the idea</summary>
#
# Work from the top down. The logit's gradient times the last layer's activations ranks that layer's
# latents; keep `k`. For each layer below, differentiate only the kept latents above (few outputs,
# few backward passes), weight by activations and by how much each kept latent matters to the logit,
# and keep `k` again. The token scales are the last step down, as in exercise 4.
# </details>
#
# <details><summary>Hint: the code</summary>
#
# One clean `model.run_with_cache(tokens)` gives each layer's `blocks.{layer}.hook_resid_pre`; encode it for
# the true latents (a `SparseTensor`) and subtract the decoded latents for the error. `t.func.grad` of the
# target logit with respect to the last layer's active values gives its edges. Then, going down, one
# `t.func.jacrev` per pair of layers of a function of the earlier layer's active values that returns only the
# **kept** latents above (k outputs, so k backward passes, not one per active latent), and one for the token
# scales into the first layer's kept latents. Multiply each Jacobian's columns by the source's activations;
# the rest is indexing and `sorted`.
# </details>

# %%
from collections.abc import Mapping, Sequence

from part_utils import EDGE_THRESHOLD, Circuit, CircuitEdge, CircuitNode, circuit_faithfulness, plot_circuit, with_error_nodes


# %% [exercise exercise=latent_circuit contract=solutions.latent_circuit.latent_circuit]
    ### BEGIN SOLUTION
    with t.no_grad():
        logit = model(tokens)[0, -1, target_token_id].item()
        _, cache = model.run_with_cache(tokens)
    resid = [cache[get_act_name("resid_pre", layer)] for layer in layers]
    dense = [saes[layer].encode(r) for layer, r in zip(layers, resid)]
    errors = [r - saes[layer].decode(d) for layer, r, d in zip(layers, resid, dense)]
    acts = [SparseTensor.from_dense(d) for d in dense]
    values = [a.values for a in acts]
    keys = [[("latent", layer, p, latent) for _, p, latent in a.indices.tolist()] for layer, a in zip(layers, acts)]

    def decoded(i: int, v: Tensor) -> Tensor:
        return saes[layers[i]].decode(SparseTensor.from_sparse((v, acts[i].sparse[1], acts[i].shape)).dense) + errors[i]

    def later(v: Tensor, i: int, rows: list[int]) -> Tensor:
        """Layer i + 1's latents at `rows` (of its true active ones), from layer i's active values `v`."""
        x = model(decoded(i, v), start_at_layer=layers[i], stop_at_layer=layers[i + 1])
        return saes[layers[i + 1]].encode(x)[tuple(acts[i + 1].sparse[1][rows].T)]

    def target_logit(v: Tensor) -> Tensor:
        return model(decoded(-1, v), start_at_layer=layers[-1])[0, -1, target_token_id]

    logit_weights = t.func.grad(target_logit)(values[-1]).detach() * values[-1]

    # Back from the logit. Only the kept latents above are differentiated: k outputs, k backward passes.
    n = len(layers)
    kept, contribution, into = [None] * n, [None] * n, [None] * n  # into[i + 1][j, u]: layer i's u -> kept j above
    c = logit_weights
    for i in reversed(range(n)):
        if i < n - 1:
            into[i + 1] = t.func.jacrev(later)(values[i], i, kept[i + 1]).detach() * values[i]
            c = into[i + 1].T @ (contribution[i + 1] / values[i + 1][kept[i + 1]])
        kept[i] = sorted(range(len(c)), key=lambda row: -abs(c[row].item()))[:k]
        contribution[i] = c[kept[i]]

    def first_latents(scales: Tensor) -> Tensor:
        x = model(model(tokens, stop_at_layer=0) * scales[..., None], start_at_layer=0, stop_at_layer=layers[0])
        return saes[layers[0]].encode(x)[tuple(acts[0].sparse[1][kept[0]].T)]

    token_weights = t.func.jacrev(first_latents)(t.ones(tokens.shape, device=tokens.device))[:, 0].T.detach()  # (seq, k)
    token_contribution = token_weights @ (contribution[0] / values[0][kept[0]])

    token_ids = tokens[0].tolist()
    logit_key = ("logit", None, len(token_ids) - 1, target_token_id)
    nodes = [CircuitNode("token", None, p, tok, 1.0, token_contribution[p].item()) for p, tok in enumerate(token_ids)]
    for i in range(n):
        nodes += [CircuitNode(*keys[i][row], values[i][row].item(), c.item()) for row, c in zip(kept[i], contribution[i])]
    nodes.append(CircuitNode(*logit_key, logit, logit))
    candidates = [
        CircuitEdge(("token", None, p, tok), keys[0][row], token_weights[p, j].item()) for j, row in enumerate(kept[0]) for p, tok in enumerate(token_ids)
    ]
    for i in range(n - 1):
        candidates += [CircuitEdge(keys[i][u], keys[i + 1][v], into[i + 1][j, u].item()) for j, v in enumerate(kept[i + 1]) for u in kept[i]]
    candidates += [CircuitEdge(keys[-1][row], logit_key, logit_weights[row].item()) for row in kept[-1]]
    largest = {}
    for edge in candidates:
        largest[edge.target] = max(largest.get(edge.target, 0.0), abs(edge.weight))
    edges = [e for e in candidates if e.weight != 0 and abs(e.weight) >= edge_threshold * largest[e.target]]
    circuit = Circuit(tuple(nodes), tuple(edges), target_token_id, tuple(layers))
    ### END SOLUTION

    return circuit


# %% [check]
tests.test_latent_circuit(latent_circuit, model, saes)

# %% [graded exercise=latent_circuit]

# %% [markdown]
# The circuit for this world's prompt, with its **error nodes**. Each SAE reconstructs the residual stream only
# up to its error, and that error is one more source into the layer above: `with_error_nodes` adds one node per
# layer and position for it (a square), with edges of the same kind, the gradient at the clean input dotted with
# the error, wherever such an edge passes the same `edge_threshold`. Every kept edge into a node,
# the error's included, is a term of the same first-order sum, so a large error edge says how much of the node
# the kept latents leave unexplained. Red nodes push " Paris" down. Hover over a node for its latent, token,
# position, activation and contribution. A latent's label is a link: with GPT-2 to its Neuronpedia dashboard;
# offline to its card, computed here and shown below the graph.

# %% [demo]
settings = exercises.latent_circuit
tokens = model.to_tokens(settings.prompt)
str_toks = model.to_str_tokens(settings.prompt)
with t.no_grad():
    target_token_id = model(tokens)[0, -1].argmax().item()
target = model.to_single_str_token(target_token_id)
circuit = latent_circuit(tokens, saes, model, settings.layers, target_token_id, settings.k)
graph = with_error_nodes(circuit, tokens, saes, model)
print(
    f"{len(circuit.latents())} latents kept, {sum(node.contribution < 0 for node in circuit.latents())} of them inhibitory; "
    f"{len(graph.errors())} error nodes with an edge above the threshold"
)
for layer in settings.layers:
    kept = [f"{str_toks[node.position]!r} ({node.position})" for node in circuit.latents() if node.layer == layer]
    print(f"layer {layer}: kept latents at " + ", ".join(kept))
online = world.name == "gpt2"
if online:
    links = {"neuronpedia_ids": {layer: f"gpt2-small/{layer}-res-jb" for layer in settings.layers}}
else:
    links = {"card_sae_ids": {layer: saes[layer].cfg.metadata.hook_name for layer in settings.layers}}
plot_circuit(graph, str_toks, target, **links).show()
for node in [] if online else circuit.latents():
    display_dashboard(sae_id=saes[node.layer].cfg.metadata.hook_name, latent_idx=node.index)

# %% [markdown]
# ### Is the circuit real?
#
# Three measurements, on exercise 5b's metrics: the logit difference against the contrast answer, and the
# probability.
#
# - **Completeness.** At each of the circuit's layers, the residual stream is the active latents' decoder
#   rows times their activations, plus the decoder bias, plus the SAE's error: gradient × each piece adds up
#   to gradient · residual stream. With the error as one node per position (the graph's squares) every term
#   is a node. `completeness` gives the kept latents' share of the summed |gradient × piece|, beside the
#   share of all the active latents (the full, unpruned graph) and of the error nodes at every position.
# - **Necessity.** Zero the circuit's latents (SAEs spliced in, errors kept) and measure the drop.
# - **Sufficiency.** Keep only the circuit: zero every *other* active latent at the circuit's layers, errors
#   kept. A sufficient circuit keeps the prediction, so its drop is small.
#
# Each is compared with a **matched control**: as many random active latents at the same layers **and
# positions** as the circuit's, never the circuit's own, over 20 seeded draws. A control drawn from any
# position would mostly miss the final position, where the prediction is made, and make any circuit that
# sits there look good.
#
# **Layer 0.** The layer-0 SAE has very few active latents per token (exercise 5b printed how many): zeroing
# one deletes most of its token. Exercise 5b's table shows what that does to a first-order estimate. So the faithfulness figures
# are given twice: with the circuit's layer-0 latents, and without (only its later layers ablated).
#
# *Before you run it:* will zeroing the circuit's 3 × k latents remove the prediction? Will keeping only them
# keep it? What changes without layer 0?

# %% [demo]
from part_utils import completeness

contrast_id = model.to_single_token(exercises.latent_to_logit.contrast)
for layer in settings.layers:
    share = completeness(circuit, tokens, saes, model, contrast_id, layer)
    print(f"layer {layer}: kept latents {share['kept']:.1%}, all active latents {share['all_latents']:.1%}, error nodes {share['errors']:.1%}")
for layers in (settings.layers, [layer for layer in settings.layers if layer != 0]):
    print(circuit_faithfulness(circuit, tokens, saes, model, contrast_id, layers=layers, n_random=20, seed=0))
# The circuit's own latents in exercise 5b's test: estimate against the effect of zero-ablating each.
nodes = circuit.latents()
rows = [attribution_and_ablation(tokens, saes[node.layer], model, t.tensor([[0, node.position, node.index]]), t.zeros(1), target_token_id, contrast_id) for node in nodes]
labels = [f"F{node.layer}.{node.index}@{str_toks[node.position]!r}" for node in nodes]
plot_estimate_vs_effect(t.cat([row[0] for row in rows]), t.cat([row[1] for row in rows]), labels, title="The circuit's latents, zero-ablated").show()

# %% [markdown]
# ### What to look for
#
# <details><summary>Answers to the questions before exercise 7</summary>
#
# - **Where the last layer's latents sit.** At the final position: the logit is read there, and latents at
#   earlier positions reach it only through attention in the layers after them. Further down, earlier
#   positions appear, feeding the final one through attention.
# - **The earlier plots' latents.** Latents that push " Paris" directly (exercise 5's largest contributions)
#   should be in the last layer, and beside them, since the ranking is by |contribution|, the latents that
#   push it down most (red). The " E" → "iff" pair is a circuit for *reading the word* "Eiffel"; whether it
#   reaches the logit's top k depends on how much of the prediction flows through the word's tokens rather
#   than through "the city of".
# - **Necessity, sufficiency and layer 0.** A circuit's layer-0 latents make necessity easy: zeroing them
#   deletes tokens, and a prompt without its landmark has no answer. That says the tokens matter, not that the
#   circuit found how they are used. The figures without layer 0 are the test of the later layers' latents.
#   Sufficiency is the harder test: a handful of latents rarely carries a prediction alone, and a circuit
#   with layer-0 nodes cannot pass it when zeroing the other layer-0 latents deletes the other tokens.
# </details>
#
# <details><summary>GPT-2 small (unmeasured)</summary>
#
# Not run on GPT-2 (layers 0, 3 and 9, k = 4, " Paris" against " London"): this is what to expect, not what
# was measured. The last layer should hold F9.22250, the French-text latent that pushes " Paris" in exercise 5,
# among its kept latents; layer 0 should hold latents on the landmark's tokens (" E", "iff", "el"), since the
# answer depends on which landmark it is, beside any on "city" or "of". The cell above the graph prints where
# the kept latents of the world you loaded sit, layer by layer: compare. GPT-2's SAEs have about 25 active
# latents per token, so a layer-0 latent there is one feature of its token rather than the token itself: expect
# a smaller gap between the figures with and without layer 0 than in the toy world, a small completeness share
# for 4 latents per layer, and a circuit that is necessary (well above its matched control) long before it is
# sufficient. `make verify-gpt2` prints the figures.
# </details>
#
# **The world you loaded** (the toy world's figures were measured with the reference solution when it was built):

# %% [demo]
show_observations(world, "latent_circuit")

# %% [markdown]
# In the toy world, read with exercise 5b's table: the estimate furthest from its effect is a layer-0 latent's,
# the first-order estimate misses the zero-ablation effect by a factor of five or more, or in sign, more often
# at layer 0 than at the later layers, and every layer-0 estimate is smaller in size than its effect (the
# observations of exercise 5b count them). Zeroing such a latent deletes much of its token, a step far outside
# the neighbourhood the gradient describes. The circuit is necessary: zeroing its latents drops the logit
# difference far more than any matched-control draw, with layer 0 and without, and far more with layer 0,
# where zeroing latents deletes tokens. It is not sufficient, with layer 0 or without: keeping only its latents
# loses more than half the logit difference (the observations above give the share), though less than any
# matched-control draw loses, so the circuit's latents carry more of the prediction than as many others at the
# same places, not the prediction alone. At each layer the kept latents
# carry a smaller share of the first-order attribution than the unpruned graph. A graph of gradient ×
# activation edges says where to look; the ablations say what holds.

# %% [markdown]
# ## Where next
#
# - Average the gradients over many prompts to find latent pairs that interact across a dataset,
#   not just on one input.
# - Rank by contribution rather than sensitivity: multiply each Jacobian column by its earlier
#   latent's activation, and see which pairs change places.
# - Look at **every** logit, not just the top `k`. Do not pass `k=None` to your function as it is:
#   reverse mode would run one backward pass per vocabulary entry, and its one-hot basis alone is
#   10 GB for GPT-2. Forward mode runs one pass per *input* instead, here the few hundred active
#   latents, and `torch.func.jacfwd` takes the same arguments as `jacrev`. The cell below does it for
#   this world's prompt and plots the logits that respond most; for very long prompts, process the
#   active latents in chunks.
# - Try MLP-output SAEs: replace the MLP's output with the SAE's reconstruction with a hook, as in
#   exercise 6.

# %% [demo]
settings = exercises.latent_to_logit
tokens = model.to_tokens(settings.prompt)
str_toks = model.to_str_tokens(settings.prompt)
sae = saes[settings.layer]
latent_acts = latent_to_logit_gradients(tokens, sae, model, k=1)[-1]  # only its activations are needed here
all_logit_grads, _ = t.func.jacfwd(latent_acts_to_logits, has_aux=True)(*latent_acts.sparse, sae, model, None)
print(f"gradients of all {all_logit_grads.shape[1]} logits with respect to {all_logit_grads.shape[2]} active latents")
plot_latent_to_logit(all_logit_grads[0], latent_acts, None, str_toks, settings.layer, model).show()
