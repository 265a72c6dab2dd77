module hopper.example/file_source

go 1.21
