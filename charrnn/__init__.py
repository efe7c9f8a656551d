"""charrnn: recurrent language models (vanilla RNN, LSTM, GRU) from scratch in numpy."""

__version__ = "0.1.0"
