"""Pre-trained speech encoders from local checkpoints, shared by both model families: checkpoint readers
(CTranslate2, Hugging Face, openai, fairseq) and format conversions."""
