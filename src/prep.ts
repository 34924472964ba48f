// The engine's preparation thread as an entry point of the compiled executable:
// the runtime asks for "./prep.ts" next to it, which in the executable is this file.
import "./engine/prep";
