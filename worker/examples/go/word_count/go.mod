module hopper.example/word_count

go 1.21
