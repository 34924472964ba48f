// The engine worker as an entry point of the compiled executable: the client
// asks for "./worker.ts" next to it, which in the executable is this file.
import "./engine/worker";
