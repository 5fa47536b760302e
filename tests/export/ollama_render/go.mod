module tunery.test/ollama_render

go 1.19
