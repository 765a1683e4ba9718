"""The CLIP-RT+ network: an open_clip backbone plus a non-causal action decoder.

The backbone embeds the image and the prompted instruction (both L2-normalised,
``[batch, embed_dim]``). The decoder is a transformer built from the
backbone's text-tower configuration without a causal mask. Its context is
``[image embedding, instruction embedding, (state token), chunk*action_dim
query tokens]``. The query outputs are projected to ``embed_dim``, reshaped
to ``[batch, chunk, action_dim * embed_dim]`` and mapped by an MLP with
residual blocks to an action chunk ``[batch, chunk, action_dim]``.

This follows the authors' open_clip fork (``CLIP.decode_action`` and
``MLPResNet`` in ``clip_rt/open_clip/src/open_clip/model.py`` of the copy of
github.com/clip-rt/clip-rt inside github.com/stfntbkv/Robotic-Simulation-GATE).
There every query token is the embedding of the padding token (id 0), so only
the positional embeddings tell the queries apart. Here that single embedding
row is the decoder's whole token table.
"""

from __future__ import annotations

import logging

import open_clip
import torch
import torch.nn.functional as F
from open_clip.transformer import LayerNorm, QuickGELU, TextTransformer
from torch import nn

from aas.policies.cliprt.config import CLIPRTConfig

logger = logging.getLogger(__name__)


class ResidualBlock(nn.Module):
    """Pre-norm residual MLP block: ``x + relu(fc(norm(x)))``, width unchanged."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(dim)
        self.fc = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + F.relu(self.fc(self.norm(x)))


class ActionHead(nn.Module):
    """MLP with residual blocks mapping ``[..., in_dim]`` to ``[..., out_dim]``."""

    def __init__(
        self, in_dim: int, hidden_dim: int, out_dim: int, num_blocks: int
    ) -> None:
        super().__init__()
        self.norm_in = nn.LayerNorm(in_dim)
        self.fc_in = nn.Linear(in_dim, hidden_dim)
        self.blocks = nn.ModuleList(
            ResidualBlock(hidden_dim) for _ in range(num_blocks)
        )
        self.norm_out = nn.LayerNorm(hidden_dim)
        self.fc_out = nn.Linear(hidden_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc_in(self.norm_in(x)))
        for block in self.blocks:
            x = block(x)
        return self.fc_out(self.norm_out(x))


def _build_decoder(
    model_cfg: dict, config: CLIPRTConfig, context_tokens: int
) -> TextTransformer:
    text_cfg = model_cfg["text_cfg"]
    if text_cfg.get("hf_model_name"):
        raise ValueError(
            f"model {config.model_name!r} has a Hugging Face text tower; the CLIP-RT+ "
            "decoder copies an open_clip text transformer, so choose a model whose "
            "text_cfg has width/heads/layers"
        )
    act_layer = QuickGELU if model_cfg.get("quick_gelu", False) else nn.GELU
    defaults = open_clip.CLIPTextCfg()
    return TextTransformer(
        context_length=context_tokens + config.num_queries,
        vocab_size=1,
        width=text_cfg.get("width", defaults.width),
        heads=text_cfg.get("heads", defaults.heads),
        layers=text_cfg.get("layers", defaults.layers),
        mlp_ratio=text_cfg.get("mlp_ratio", defaults.mlp_ratio),
        ls_init_value=text_cfg.get("ls_init_value"),
        output_dim=model_cfg["embed_dim"],
        no_causal_mask=True,
        pool_type="none",
        proj_bias=text_cfg.get("proj_bias", False),
        act_layer=act_layer,
        norm_layer=LayerNorm,
    )


class CLIPRTModel(nn.Module):
    """CLIP-RT+ backbone and action decoder.

    Attributes:
        backbone: the open_clip model (``CLIP`` or ``CustomTextCLIP``).
        decoder: open_clip ``TextTransformer`` used without its token lookup
            and pooling. ``token_embedding.weight`` is ``[1, width]``, the
            embedding shared by all query tokens.
        context_proj: ``Linear(embed_dim, width)`` when the two differ, else ``None``.
        state_proj: ``Linear(state_dim, width)`` when proprioception is on.
        state_mean / state_std: buffers ``[state_dim]`` (proprioception only)
            that normalise raw states before ``state_proj``.
        head: the residual MLP action head.
        preprocess_train / preprocess_eval: open_clip's image transforms for
            this backbone (PIL image to normalised ``[3, size, size]`` tensor).
    """

    def __init__(self, config: CLIPRTConfig, aug_cfg: dict | None = None) -> None:
        super().__init__()
        self.config = config
        model_cfg = open_clip.get_model_config(config.model_name)
        self.backbone, self.preprocess_train, self.preprocess_eval = (
            open_clip.create_model_and_transforms(
                config.model_name,
                pretrained=config.pretrained,
                output_dict=True,
                aug_cfg=aug_cfg,
            )
        )
        self.tokenizer = open_clip.get_tokenizer(config.model_name)
        self.embed_dim = int(model_cfg["embed_dim"])
        self.image_size = _image_size(self.backbone)

        self.context_tokens = 2 + (1 if config.state_dim else 0)
        self.decoder = _build_decoder(model_cfg, config, self.context_tokens)
        width = self.decoder.width
        self.context_proj = (
            nn.Linear(self.embed_dim, width) if width != self.embed_dim else None
        )
        self.state_proj = (
            nn.Linear(config.state_dim, width) if config.state_dim else None
        )
        if config.state_dim:
            # Training-set statistics of the state, saved with the weights.
            self.register_buffer("state_mean", torch.zeros(config.state_dim))
            self.register_buffer("state_std", torch.ones(config.state_dim))
        self.head = ActionHead(
            in_dim=config.action_dim * self.embed_dim,
            hidden_dim=self.embed_dim,
            out_dim=config.action_dim,
            num_blocks=config.head_blocks,
        )

    def tokenize(self, instructions: list[str]) -> torch.Tensor:
        """Prompt and tokenise instructions: ``[batch, context_length]`` int64."""
        return self.tokenizer([self.config.prompt(text) for text in instructions])

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """Embed preprocessed images ``[batch, 3, H, W]`` to unit vectors ``[batch, embed_dim]``."""
        return self.backbone.encode_image(images, normalize=True)

    def encode_instruction(self, tokens: torch.Tensor) -> torch.Tensor:
        """Embed prompt tokens ``[batch, context_length]`` to unit vectors ``[batch, embed_dim]``."""
        return self.backbone.encode_text(tokens, normalize=True)

    def decode(
        self,
        image_embedding: torch.Tensor,
        instruction_embedding: torch.Tensor,
        state: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict action chunks ``[batch, chunk_size, action_dim]``.

        Args:
            image_embedding: ``[batch, embed_dim]``.
            instruction_embedding: ``[batch, embed_dim]``.
            state: raw (unnormalised) ``[batch, state_dim]``; required exactly
                when ``state_dim > 0``.
        """
        cfg = self.config
        batch = image_embedding.shape[0]
        cast_dtype = self.decoder.transformer.get_cast_dtype()

        context = torch.stack([image_embedding, instruction_embedding], dim=1)
        if self.context_proj is not None:
            context = self.context_proj(context)
        parts = [context.to(cast_dtype)]
        if self.state_proj is not None:
            if state is None:
                raise ValueError(
                    f"this model takes a state [batch, {cfg.state_dim}] input"
                )
            normalized = (state.to(context.dtype) - self.state_mean) / self.state_std
            parts.append(self.state_proj(normalized).unsqueeze(1).to(cast_dtype))
        elif state is not None:
            raise ValueError("state given, but the model was built with state_dim=0")
        queries = self.decoder.token_embedding.weight[:1].to(cast_dtype)
        parts.append(queries.unsqueeze(0).expand(batch, cfg.num_queries, -1))

        x = torch.cat(parts, dim=1) + self.decoder.positional_embedding.to(cast_dtype)
        x = self.decoder.transformer(x, attn_mask=None)
        x = self.decoder.ln_final(x)[:, self.context_tokens :]

        projection = self.decoder.text_projection
        x = projection(x) if isinstance(projection, nn.Linear) else x @ projection
        x = x.reshape(batch, cfg.chunk_size, cfg.action_dim * self.embed_dim)
        return self.head(x)

    def forward(
        self,
        images: torch.Tensor,
        tokens: torch.Tensor | None = None,
        state: torch.Tensor | None = None,
        instruction_embedding: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Predict chunks ``[batch, chunk_size, action_dim]`` from images and instructions.

        Args:
            images: preprocessed ``[batch, 3, H, W]``.
            tokens: prompt tokens ``[batch, context_length]``.
            state: ``[batch, state_dim]`` when ``state_dim > 0``.
            instruction_embedding: precomputed ``encode_instruction`` output
                ``[batch, embed_dim]``, used in place of ``tokens``.
        """
        if instruction_embedding is None:
            if tokens is None:
                raise ValueError("pass tokens or instruction_embedding")
            instruction_embedding = self.encode_instruction(tokens)
        image_embedding = self.encode_image(images)
        instruction_embedding = instruction_embedding.to(image_embedding.dtype)
        return self.decode(image_embedding, instruction_embedding, state)

    def set_state_statistics(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        """Store the per-dimension state mean and std ``[state_dim]`` used to normalise inputs.

        Dimensions with a std below 1e-6 (constant in the data) keep a std of 1.
        """
        if self.state_proj is None:
            raise ValueError("the model was built with state_dim=0 and takes no state")
        std = torch.where(std < 1e-6, torch.ones_like(std), std)
        self.state_mean.copy_(mean)
        self.state_std.copy_(std)

    def freeze_towers(self, image: bool = False, text: bool = False) -> None:
        """Stop gradients into the backbone's image and/or text tower."""
        if image:
            self.backbone.lock_image_tower()
        if text:
            self.backbone.lock_text_tower()


def masked_l1_sum(
    predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sum of absolute errors over valid chunk entries, and their count.

    Args:
        predicted, target: ``[batch, chunk, action_dim]``.
        mask: ``[batch, chunk]`` bool, false for steps past the segment's end.

    Returns:
        ``(sum, count)``: scalar tensors. ``sum / count`` is the masked L1 loss;
        keeping both lets distributed training normalise by the global count.
    """
    if predicted.shape != target.shape or mask.shape != predicted.shape[:2]:
        raise ValueError(
            f"shape mismatch: predicted {tuple(predicted.shape)}, target "
            f"{tuple(target.shape)}, mask {tuple(mask.shape)}"
        )
    weights = mask.to(predicted.dtype).unsqueeze(-1)
    total = ((predicted - target).abs() * weights).sum()
    count = weights.sum() * predicted.shape[-1]
    return total, count


def masked_l1(
    predicted: torch.Tensor, target: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor:
    """Mean absolute error over valid chunk entries (0 when none is valid)."""
    total, count = masked_l1_sum(predicted, target, mask)
    return total / count.clamp(min=1)


def _image_size(backbone: nn.Module) -> int:
    size = backbone.visual.preprocess_cfg["size"]
    return int(size if isinstance(size, int) else size[0])
