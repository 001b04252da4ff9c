
type.googleapis.com/x{}