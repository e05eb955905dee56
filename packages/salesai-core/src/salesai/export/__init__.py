"""Built-in exporters (`safetensors`, `hf`, `onnx`), registered in `salesai.builtin.exporters`."""
