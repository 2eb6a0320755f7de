package org.outpost.field.ui

import android.os.Build
import androidx.activity.compose.rememberLauncherForActivityResult
import androidx.compose.runtime.Composable
import com.journeyapps.barcodescanner.ScanContract
import com.journeyapps.barcodescanner.ScanOptions

/** The phone: the camera reads QR codes (enrolment codes, beneficiary cards). */
object AndroidPlatform : FieldPlatform {
    @Composable
    override fun rememberQrScanner(onResult: (String) -> Unit): () -> Unit {
        val launcher = rememberLauncherForActivityResult(ScanContract()) { result ->
            result.contents?.let(onResult)
        }
        return {
            launcher.launch(
                ScanOptions()
                    .setDesiredBarcodeFormats(ScanOptions.QR_CODE)
                    .setBeepEnabled(false)
                    .setOrientationLocked(false)
                    .setPrompt("Point the camera at the QR code"),
            )
        }
    }

    override val deviceLabel: String = "${Build.MANUFACTURER} ${Build.MODEL}"
}
