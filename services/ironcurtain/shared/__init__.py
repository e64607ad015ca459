"""Team-shared infrastructure (compose.shared.yaml): its secret files and its lifecycle."""
