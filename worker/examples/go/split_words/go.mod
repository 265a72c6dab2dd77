module hopper.example/split_words

go 1.21
