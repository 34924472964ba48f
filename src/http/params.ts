// Path parameters as the client meant them.
import { ApiError } from "./errors";

/** A wildcard path segment (the router leaves those encoded); a malformed %-escape is a 400, not a crash. */
export function wildcardParam(raw: string, param: string): string {
  try {
    return decodeURIComponent(raw);
  } catch {
    throw ApiError.invalid(`Invalid URL escape in ${param}: '${raw.slice(0, 100)}'`, param, "invalid_path");
  }
}

/** A :param (the router decodes those, and gives null for a malformed %-escape). */
export function pathParam(value: string | null | undefined, param: string): string {
  if (typeof value !== "string") throw ApiError.invalid(`Invalid URL escape in ${param}`, param, "invalid_path");
  return value;
}
