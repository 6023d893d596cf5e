"""TiTok, a 1D image tokenizer trained from the kit's VQGAN (TODO5, an extension): ``TiTok`` for the model,
``models.TiTok.teacher`` for the frozen teacher and TiTok checkpoints, ``load_titok_config`` for a config."""
from .config import TiTokConfig, TiTokRunConfig, load_titok_config, with_teacher
from .quantizer import TokenQuantizer, usage_stats
from .titok import TiTok, TiTokOutput

__all__ = ["TiTok", "TiTokConfig", "TiTokOutput", "TiTokRunConfig", "TokenQuantizer", "load_titok_config",
           "usage_stats", "with_teacher"]
