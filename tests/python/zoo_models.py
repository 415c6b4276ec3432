"""The model zoo shared by the compile-backend zoo (test_model_zoo.py) and the
eager-device training tests (device_train.py, test_device_models.py,
test_device_training.py): small transformers configs, plain-torch modules and
the output helpers both comparisons use. Building a config or a module class
here draws no random numbers; weights are drawn where a test instantiates."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F


def transformers_or_skip():
    return pytest.importorskip("transformers")


def no_dropout(model: nn.Module) -> nn.Module:
    for mod in model.modules():
        if isinstance(mod, nn.Dropout):
            mod.p = 0.0
    return model


def float_tensors(out):
    """Float tensors of a model output (tensor, tuple, dict or ModelOutput)."""
    if isinstance(out, torch.Tensor):
        return [out] if out.is_floating_point() else []
    if isinstance(out, dict):
        out = list(out.values())
    if isinstance(out, (list, tuple)):
        return [t for o in out for t in float_tensors(o)]
    return []


def square_loss(out):
    return sum(t.float().pow(2).mean() for t in float_tensors(out))


# ------------------------------------------------ transformers configs --

def llama_config(tf, attn):
    return tf.LlamaConfig(vocab_size=96, hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=64, attn_implementation=attn)


def qwen2_config(tf):
    return tf.Qwen2Config(vocab_size=96, hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=64, attn_implementation="sdpa")


def mistral_config(tf):
    return tf.MistralConfig(vocab_size=96, hidden_size=32, intermediate_size=64,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                            max_position_embeddings=64, sliding_window=4,
                            attn_implementation="eager")


def t5_config(tf):
    return tf.T5Config(vocab_size=96, d_model=32, d_kv=8, d_ff=64, num_layers=2,
                       num_decoder_layers=2, num_heads=4, relative_attention_num_buckets=8,
                       relative_attention_max_distance=16, dropout_rate=0.0,
                       decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)


def vit_config(tf):
    return tf.ViTConfig(image_size=16, patch_size=4, num_channels=3, hidden_size=32,
                        num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                        num_labels=5)


def distilbert_config(tf):
    return tf.DistilBertConfig(vocab_size=96, dim=32, n_layers=2, n_heads=4, hidden_dim=64,
                               max_position_embeddings=64, num_labels=3)


def roberta_config(tf):
    return tf.RobertaConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=64,
                            max_position_embeddings=64)


def bert_token_types_config(tf):
    return tf.BertConfig(vocab_size=96, hidden_size=32, num_hidden_layers=2,
                         num_attention_heads=4, intermediate_size=64,
                         max_position_embeddings=64, type_vocab_size=2,
                         attn_implementation="sdpa")


def whisper_config(tf):
    return tf.WhisperConfig(vocab_size=96, num_mel_bins=8, encoder_layers=1, decoder_layers=1,
                            encoder_attention_heads=2, decoder_attention_heads=2,
                            d_model=16, encoder_ffn_dim=32, decoder_ffn_dim=32,
                            max_source_positions=16, max_target_positions=16,
                            pad_token_id=0, bos_token_id=1, eos_token_id=2,
                            decoder_start_token_id=1)


def wav2vec2_config(tf, **extra):
    return tf.Wav2Vec2Config(vocab_size=32, hidden_size=16, num_hidden_layers=1,
                             num_attention_heads=2, intermediate_size=32, conv_dim=(8, 8),
                             conv_stride=(5, 2), conv_kernel=(10, 3), num_conv_pos_embeddings=8,
                             num_conv_pos_embedding_groups=2, mask_time_prob=0.0,
                             feat_extract_norm="group", **extra)


def bert_mask_and_token_types(ids):
    """Inputs of bert_token_types_config models beside `ids` [2, 12]: sample 1
    padded from position 9, token type 1 from position 6."""
    mask = torch.ones_like(ids)
    mask[1, 9:] = 0
    types = torch.zeros_like(ids)
    types[:, 6:] = 1
    return mask, types


def resnet_config(tf):
    return tf.ResNetConfig(num_channels=3, embedding_size=8, hidden_sizes=[8, 16],
                           depths=[1, 1], layer_type="bottleneck", num_labels=4)


def convnext_config(tf):
    return tf.ConvNextConfig(num_channels=3, num_stages=2, hidden_sizes=[8, 16], depths=[1, 1],
                             patch_size=2, num_labels=4)


def mobilenet_v2_config(tf):
    return tf.MobileNetV2Config(num_channels=3, image_size=32, depth_multiplier=0.25,
                                num_labels=4)


# ------------------------------------------------------- plain torch --

class RNNTagger(nn.Module):
    def __init__(self, cell):
        super().__init__()
        self.emb = nn.Embedding(50, 16)
        self.rnn = cell(16, 24, num_layers=2, batch_first=True, bidirectional=True)
        self.head = nn.Linear(48, 5)

    def forward(self, ids):
        h, _ = self.rnn(self.emb(ids))
        return self.head(h)


class UNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.down1 = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.GroupNorm(2, 8), nn.SiLU())
        self.down2 = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1),
                                   nn.InstanceNorm2d(16, affine=True), nn.ReLU())
        self.mid = nn.Conv2d(16, 16, 3, padding=1, padding_mode="reflect")
        self.up = nn.ConvTranspose2d(16, 8, 2, stride=2)
        self.up2 = nn.Conv2d(24, 8, 3, padding=1, padding_mode="replicate")
        self.out = nn.Conv2d(8 + 8, 2, 1)

    def forward(self, x):
        a = self.down1(x)
        b = self.down2(a)
        b = F.leaky_relu(self.mid(b), 0.1)
        u = torch.cat([self.up(b), a], dim=1)
        v = F.interpolate(b, scale_factor=2, mode="bilinear", align_corners=False)
        v = self.up2(torch.cat([v, self.up(b)], dim=1))
        return self.out(torch.cat([u[:, :8] + v, a], dim=1))


class KeyPaddedMHA(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True, kdim=24, vdim=20)

    def forward(self, q, k, v, pad):
        out, w = self.mha(q, k, v, key_padding_mask=pad)
        return out, w


def mha_args():
    """(q, k, v, key_padding_mask) for KeyPaddedMHA; sample 0 pads its last 2 keys."""
    pad = torch.zeros(2, 7, dtype=torch.bool)
    pad[0, 5:] = True
    return [torch.randn(2, 5, 32), torch.randn(2, 7, 24), torch.randn(2, 7, 20), pad]


class BagClassifier(nn.Module):
    def __init__(self, mode):
        super().__init__()
        self.bag = nn.EmbeddingBag(40, 12, mode=mode)
        self.head = nn.Linear(12, 3)

    def forward(self, ids, offsets):
        return self.head(self.bag(ids, offsets))


class MiscOps(nn.Module):
    """einsum, cumsum, topk, masked_fill, normalize, group/instance norm, pads."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.randn(4, 6, 5))
        self.conv = nn.Conv2d(4, 4, 3)
        self.gn = nn.GroupNorm(2, 4)
        self.inorm = nn.InstanceNorm2d(4, affine=True)

    def forward(self, x, mask):
        # x: [b, 4, 8, 8], mask: [b, 8]
        y = F.pad(x, (1, 1, 2, 2), mode="reflect")
        y = self.conv(F.pad(y, (0, 1, 1, 0), mode="replicate"))
        y = self.inorm(self.gn(y))
        seq = y.flatten(2).transpose(1, 2)[:, :8, :]  # [b, 8, 4]
        e = torch.einsum("bsc,cdk->bsdk", seq, self.w).sum(-1)  # [b, 8, 6]
        e = e.masked_fill(mask[..., None], -1e4)
        c = torch.cumsum(F.normalize(e, dim=-1), dim=1)
        vals, idx = torch.topk(c, 3, dim=-1)
        up = F.interpolate(y, size=(11, 9), mode="nearest")
        return vals, idx, up.mean((2, 3)), F.pad(e, (2, 0), mode="constant", value=0.5)


def misc_args():
    """(x, mask) for MiscOps; sample 0 masks its last 2 positions."""
    mask = torch.zeros(2, 8, dtype=torch.bool)
    mask[0, 6:] = True
    return [torch.randn(2, 4, 8, 8), mask]
